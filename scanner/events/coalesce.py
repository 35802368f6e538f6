"""A burst of events -> one plan: each account at most once, each policy change once.

An infrastructure-as-code apply that touches 50 roles of one account is one rescan of
that account; a role change and an account-wide change of the same account are one
account rescan; an account that is collected again needs no re-decision as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scanner.events.scope import FullScan, KeyChange, PolicyChange, Rescan, Work

ALL_ROLES = None


@dataclass
class Plan:
    # account id -> role names whose drift this run decides (None: the whole account)
    rescans: dict[str, set[str] | None] = field(default_factory=dict)
    keys: set[KeyChange] = field(default_factory=set)
    policies: set[PolicyChange] = field(default_factory=set)
    full_scan: str | None = None  # why a full scan is needed
    items: int = 0  # work items folded into this plan

    @property
    def units(self) -> int:
        """Distinct pieces of work left after coalescing."""
        return len(self.rescans) + len(self.keys) + len(self.policies) + bool(self.full_scan)

    @property
    def coalesced(self) -> int:
        """Work items absorbed by another one of the same plan."""
        return max(self.items - self.units, 0)

    def add(self, work: Work) -> None:
        self.items += 1
        if isinstance(work, Rescan):
            self.add_rescan(work.account_id, work.role)
        elif isinstance(work, KeyChange):
            self.keys.add(work)
        elif isinstance(work, PolicyChange):
            self.policies.add(work)
        elif isinstance(work, FullScan):
            self.full_scan = self.full_scan or work.reason

    def add_rescan(self, account_id: str, role: str | None = ALL_ROLES) -> None:
        if account_id in self.rescans:
            roles = self.rescans[account_id]
            if roles is not ALL_ROLES and role is not ALL_ROLES:
                roles.add(role)
            else:
                self.rescans[account_id] = ALL_ROLES
            return
        self.rescans[account_id] = ALL_ROLES if role is ALL_ROLES else {role}


def coalesce(works: list[Work]) -> Plan:
    plan = Plan()
    for work in works:
        plan.add(work)
    return plan
