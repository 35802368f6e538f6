"""The scan's vocabulary, defined once: what a check, an account read, a run and a drift
event can be. The engine's own words (decisions, layers) live in scanner.policy.

Each is a StrEnum, so a member compares equal to, and is stored as, the string the
database, the metrics and the JSON output use: `CheckStatus.PASS == "pass"`.
"""

from __future__ import annotations

from enum import StrEnum


class CheckStatus(StrEnum):
    """One verdict of one scan."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


class StateStatus(StrEnum):
    """The latest status of a check key across scans (check_state): a verdict, or gone
    when a scan that read its account no longer had the check."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    GONE = "gone"


class AccountStatus(StrEnum):
    """Whether a member account could be read in one scan."""

    OK = "ok"
    ERROR = "error"


class RunStatus(StrEnum):
    """A scan run: running, then one of the final statuses."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every account read
    PARTIAL = "partial"  # some accounts could not be read, the rest recorded
    FAILED = "failed"  # the scan itself broke
    INTERRUPTED = "interrupted"  # stopped, or abandoned by a dead process


# The statuses a run can finish with, in the order reports list them.
FINAL_RUN_STATUSES: tuple[RunStatus, ...] = (
    RunStatus.SUCCEEDED,
    RunStatus.PARTIAL,
    RunStatus.FAILED,
    RunStatus.INTERRUPTED,
)
# A run that saw the whole organization: every account read, or some unreadable and the
# rest recorded. Only these may declare a check gone or count as "compliance now".
COMPLETE_RUN_STATUSES: tuple[RunStatus, ...] = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)


class DriftKind(StrEnum):
    """How a check key's status moved between two scans (storage.drift has the rules)."""

    REGRESSED = "regressed"
    FIXED = "fixed"
    NEW = "new"
    GONE = "gone"
    ERROR = "error"


class Trigger(StrEnum):
    """What started a scan (scan_runs.trigger)."""

    CLI = "cli"
    SCHEDULE = "schedule"
    DEMO = "demo"
    EVENT = "event"  # an event-driven rescan of the accounts a change reaches
