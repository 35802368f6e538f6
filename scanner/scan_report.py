"""What one scan run reports back to its caller (the CLI, the service, the demo)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scanner.model import Account, Organization, ScanSummary
from scanner.vocabulary import CheckStatus
from storage.repository import RunTotals

Progress = Callable[[int, int, Account | None], None]


@dataclass
class ScanReport:
    run_id: int
    summary: ScanSummary
    totals: RunTotals | None
    organization: Organization | None = None
    simulator_name: str = ""
    simulator_note: str = ""  # e.g. that the engine stood in for AWS's simulator
    interrupted: bool = False
    seconds: float = 0.0
    # accounts an incremental scan found unchanged: their earlier verdicts carried over
    unchanged_accounts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_checks(self) -> int:
        return sum(1 for result in self.summary.results if result.status == CheckStatus.FAIL)
