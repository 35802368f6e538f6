"""Event-driven rescans: CloudTrail management events (through EventBridge and SQS) turned
into the smallest rescan that covers each change.

parse (message -> ChangeEvent) -> catalog (which calls can change a verdict) -> scope
(event -> work) -> coalesce (a burst -> one plan) -> rescan / redecide -> consume (the SQS
loop). Only scanner.aws talks to AWS and only storage to the database.
"""
