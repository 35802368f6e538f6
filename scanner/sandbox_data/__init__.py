"""Seed data of the sandbox organization: its layout, the hand-written expected verdicts,
and the policy documents that plant one cause of Access Denied in each account."""
