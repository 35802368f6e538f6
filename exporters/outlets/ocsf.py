"""OCSF Compliance Finding events (class 2003) for SIEMs and data lakes, as JSON lines.

One event per failing check (activity Create when this scan made it fail, Update when it
was already failing) and one per check this scan fixed (activity Close, compliance Pass,
status Resolved). The finding uid is the Security Hub finding id, so both outlets name a
finding alike. Target: OCSF 1.7.0, the newest schema release `pydantic-ocsf` ships whole;
every event is validated against it (exporters.outlets.ocsf_schema) before it is written.

Severity: High (4) for a failing check, for the reason given in exporters.outlets.securityhub.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporters.outlets import ScanFindings, iso
from exporters.outlets.ocsf_schema import Validator
from exporters.outlets.securityhub import finding_id
from scanner.policy.arn import role_name

log = logging.getLogger(__name__)

OCSF_VERSION = "1.7.0"
CLASS_NAME = "compliance_finding"
CATEGORY_UID, CATEGORY_NAME = 2, "Findings"
CLASS_UID, CLASS_LABEL = 2003, "Compliance Finding"
ACTIVITIES = {"create": (1, "Create"), "update": (2, "Update"), "close": (3, "Close")}
SEVERITY = (4, "High")
FINDING_STATUS = {"open": (1, "New"), "resolved": (4, "Resolved")}
COMPLIANCE_STATUS = {"pass": (1, "Pass"), "fail": (3, "Fail")}
AWS_ACCOUNT_TYPE = (10, "AWS Account")
STANDARD = "vaultscan: backup roles can create and use AWS Backup vaults"
FINDING_TYPE = "Backup vault access"


class InvalidEvent(ValueError):
    """An event we built does not match the OCSF schema (a bug: nothing is written)."""


def _ms(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1000)


@functools.cache  # reading package metadata costs ~0.7 ms: once per process
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vaultscan")
    except PackageNotFoundError:
        return "unknown"


def _resources(row: dict[str, Any], partition: str) -> list[dict[str, Any]]:
    items = [
        {
            "uid": row["role_arn"],
            "name": role_name(row["role_arn"]),
            "type": "AWS::IAM::Role",
            "region": row["region"],
            "cloud_partition": partition,
        }
    ]
    resource = row.get("resource") or ""
    if ":kms:" in resource and ":key/" in resource:
        items.append(
            {
                "uid": resource,
                "type": "AWS::KMS::Key",
                "region": row["region"],
                "cloud_partition": partition,
            }
        )
    return items


def _cause(row: dict[str, Any]) -> str:
    parts = [f"denied by the {row['deciding_layer']} layer"] if row.get("deciding_layer") else []
    if row.get("policy"):
        parts.append(f"policy {row['policy']}")
    if row.get("statement"):
        parts.append(f"statement {row['statement']}")
    return ", ".join(parts) or (row.get("message") or "")


def build_event(
    row: dict[str, Any], *, activity: str, observed_at: datetime, run_id: int, partition: str
) -> dict[str, Any]:
    """One Compliance Finding event for a check (a row of storage's latest_results)."""
    closing = activity == "close"
    activity_id, activity_name = ACTIVITIES[activity]
    status_id, status = FINDING_STATUS["resolved" if closing else "open"]
    compliance_id, compliance = COMPLIANCE_STATUS["pass" if closing else "fail"]
    since = row.get("failing_since") or observed_at
    uid = finding_id(row["check_key"])
    verb = "can" if closing else "cannot"
    title = f"Backup role {role_name(row['role_arn'])} {verb} {row['check']}"
    fix = row.get("remediation") or {}
    event: dict[str, Any] = {
        "category_uid": CATEGORY_UID,
        "category_name": CATEGORY_NAME,
        "class_uid": CLASS_UID,
        "class_name": CLASS_LABEL,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": f"{CLASS_LABEL}: {activity_name}",
        "time": _ms(observed_at),
        "severity_id": SEVERITY[0],
        "severity": SEVERITY[1],
        "status_id": status_id,
        "status": status,
        "message": f"{title} in account {row['account_id']}, {row['region']}",
        "metadata": {
            "version": OCSF_VERSION,
            "uid": f"{uid}/run-{run_id}",
            "profiles": ["cloud"],
            "product": {"name": "vaultscan", "vendor_name": "vaultscan", "version": _version()},
        },
        "cloud": {
            "provider": "AWS",
            "region": row["region"],
            "account": {
                "uid": row["account_id"],
                "name": row.get("account_name") or row["account_id"],
                "type_id": AWS_ACCOUNT_TYPE[0],
                "type": AWS_ACCOUNT_TYPE[1],
            },
        },
        "finding_info": {
            "uid": uid,
            "title": title,
            "desc": f"{row['role_arn']} {verb} perform {row['check']} on "
            f"{row.get('resource') or '*'}"
            + ("" if closing else f": {_cause(row)}. {row.get('message') or ''}".rstrip()),
            "types": [FINDING_TYPE],
            "first_seen_time": _ms(since),
            "last_seen_time": _ms(observed_at),
        },
        "compliance": {
            "control": row["check"],
            "standards": [STANDARD],
            "status_id": compliance_id,
            "status": compliance,
        },
        "resources": _resources(row, partition),
        "unmapped": {
            "check_key": row["check_key"],
            "ou_path": row.get("ou_path_names") or "",
            "deciding_layer": row.get("deciding_layer"),
            "policy": row.get("policy"),
            "statement": row.get("statement"),
            "fix_kind": fix.get("kind"),
            "fix_statement": fix.get("statement"),
            "fix_commands": fix.get("commands") or [],
        },
    }
    if not closing:
        event["remediation"] = {"desc": fix.get("summary") or "See `vaultscan results`."}
    return event


def build_events(scan: ScanFindings, *, partition: str = "aws") -> list[dict[str, Any]]:
    """Every event of `scan`: failing checks, then the checks it fixed."""
    opened = {event["check_key"] for event in scan.regressions()}
    common = {"observed_at": scan.finished_at, "run_id": scan.run_id, "partition": partition}
    events = [
        build_event(row, activity="create" if row["check_key"] in opened else "update", **common)
        for row in scan.failing
    ]
    events += [build_event(row, activity="close", **common) for row in scan.fixes()]
    return events


def validate(events: Iterable[dict[str, Any]]) -> None:
    validator = Validator(OCSF_VERSION)
    for event in events:
        problems = validator.validate_event(event, CLASS_NAME)
        if problems:
            uid = (event.get("finding_info") or {}).get("uid", "?")
            raise InvalidEvent(
                f"OCSF {OCSF_VERSION} {CLASS_NAME} {uid}: " + "; ".join(problems[:5])
            )


def json_lines(events: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(event, separators=(",", ":"), default=str) + "\n" for event in events)


def object_key(prefix: str, scan: ScanFindings) -> str:
    stamp = scan.finished_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}vaultscan-run-{scan.run_id}-{stamp}.ocsf.jsonl"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/prefix/ -> (bucket, "prefix/"); a prefix always ends with / if any."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


class OcsfOutlet:
    """Appends the events to a file, and/or writes one S3 object per scan."""

    name = "ocsf"

    def __init__(
        self,
        *,
        path: Path | None = None,
        s3_client: Any = None,
        s3_uri: str | None = None,
        partition: str = "aws",
    ) -> None:
        if path is None and s3_uri is None:
            raise ValueError("the OCSF outlet needs a path or an S3 location")
        self._path = path
        self._s3 = s3_client
        self._s3_uri = s3_uri
        self._partition = partition

    def publish(self, scan: ScanFindings) -> None:
        events = build_events(scan, partition=self._partition)
        validate(events)
        if not events:
            return
        text = json_lines(events)
        if self._path is not None:
            with self._path.open("a", encoding="utf-8") as handle:
                handle.write(text)
        if self._s3_uri is not None:
            bucket, prefix = split_s3_uri(self._s3_uri)
            self._s3.put_object(
                Bucket=bucket,
                Key=object_key(prefix, scan),
                Body=text.encode(),
                ContentType="application/x-ndjson",
            )
        log.info(
            "ocsf events written run_id=%s events=%s at=%s",
            scan.run_id,
            len(events),
            iso(scan.finished_at),
        )
