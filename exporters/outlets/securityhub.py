"""AWS Security Hub: one ASFF finding per failing (account, region, role, check), kept in
step with every scan.

Lifecycle (finding providers' rules, "BatchImportFindings" in the Security Hub API
Reference, https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_BatchImportFindings.html):
- a failing check is imported with a stable Id (a hash of its check key), so a later scan
  updates the same finding instead of adding one: same Id, same CreatedAt (the start of the
  failing streak), later UpdatedAt and LastObservedAt;
- a finding of ours that is still ACTIVE but whose check now passes (or no longer exists)
  is imported once more with Compliance.Status PASSED (NOT_AVAILABLE when the check is
  gone, e.g. its role was deleted) and RecordState ARCHIVED, which
  takes it out of the active findings; should the check fail again, the same finding is
  made active again and Security Hub resets its workflow status to NEW
  (https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_Workflow.html);
- a check in error (its account could not be read) leaves its finding as it is.
Which of our findings are active is asked of Security Hub (GetFindings), so nothing is
lost or duplicated when an earlier export failed half-way.

Limits: at most 100 findings per BatchImportFindings request and 240 KB per finding
(same page); Title 256 and Description 1024 characters, Remediation.Recommendation.Text
512 (https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_AwsSecurityFinding.html).

Which account: with the default product ARN, BatchImportFindings accepts only findings
whose AwsAccountId is the calling account (API_BatchImportFindings page), so findings are
imported into the scanner's own account (the delegated administrator, where findings are
triaged) and name the member account in Title, Resources and ProductFields.

Severity: HIGH for every failing check. A backup role that cannot create or use a vault
means the account's backups fail until someone fixes it: data is unprotected, which the
ASFF severity guidance places at HIGH ("Severity" in
https://docs.aws.amazon.com/securityhub/latest/userguide/asff-top-level-attributes.html).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporters.outlets import ScanFindings, iso, truncate
from scanner.policy.arn import role_name

log = logging.getLogger(__name__)

SCHEMA_VERSION = "2018-10-08"
GENERATOR_ID = "vaultscan/backup-vault-access"
FINDING_TYPES = ["Software and Configuration Checks/AWS Security Best Practices"]
SEVERITY_LABEL = "HIGH"
MAX_FINDINGS_PER_REQUEST = 100
MAX_FINDING_BYTES = 240 * 1024
MAX_TITLE = 256
MAX_DESCRIPTION = 1024
MAX_RECOMMENDATION = 512
MAX_PRODUCT_FIELD = 2048
PRODUCT_FIELD_PREFIX = "vaultscan/"
# Fields a resolved finding carries over from the active one it closes.
_KEPT_ON_RESOLVE = (
    "SchemaVersion",
    "Id",
    "ProductArn",
    "GeneratorId",
    "AwsAccountId",
    "Types",
    "CreatedAt",
    "FirstObservedAt",
    "Severity",
    "Title",
    "Description",
    "Resources",
    "Remediation",
    "FindingProviderFields",
)


def product_arn(partition: str, region: str, account_id: str) -> str:
    """The default product ARN of an account's own findings (custom integrations)."""
    return f"arn:{partition}:securityhub:{region}:{account_id}:product/{account_id}/default"


def finding_id(check_key: str) -> str:
    """Stable across scans: the same check always has the same finding."""
    return f"vaultscan/{hashlib.sha256(check_key.encode()).hexdigest()[:40]}"


def _resources(row: dict[str, Any], partition: str) -> list[dict[str, Any]]:
    region = row["region"]
    resources = [
        {"Type": "AwsIamRole", "Id": row["role_arn"], "Partition": partition, "Region": region},
    ]
    resource = row.get("resource") or ""
    if ":kms:" in resource and ":key/" in resource:
        resources.append(
            {"Type": "AwsKmsKey", "Id": resource, "Partition": partition, "Region": region}
        )
    resources.append(
        {
            "Type": "AwsAccount",
            "Id": f"AWS::::Account:{row['account_id']}",
            "Partition": partition,
            "Region": region,
        }
    )
    return resources


def _cause(row: dict[str, Any]) -> str:
    layer = row.get("deciding_layer")
    if not layer:
        return row.get("message") or "the check failed"
    parts = [f"denied by the {layer} layer"]
    if row.get("policy"):
        parts.append(f"policy {row['policy']}")
    if row.get("statement"):
        parts.append(f"statement {row['statement']}")
    return ", ".join(parts)


def _recommendation(fix: dict[str, Any]) -> str:
    text = fix.get("summary") or "See the fix stored with the check (vaultscan results)."
    commands = fix.get("commands") or []
    if commands:
        text += f" Command: {commands[0]}"
    return truncate(text, MAX_RECOMMENDATION)


def _product_fields(row: dict[str, Any]) -> dict[str, str]:
    fix = row.get("remediation") or {}
    values = {
        "CheckKey": row["check_key"],
        "AccountId": row["account_id"],
        "AccountName": row.get("account_name"),
        "OuPath": row.get("ou_path_names"),
        "Region": row["region"],
        "RoleArn": row["role_arn"],
        "Check": row["check"],
        "Resource": row.get("resource"),
        "DecidingLayer": row.get("deciding_layer"),
        "Policy": row.get("policy"),
        "Statement": row.get("statement"),
        "FixKind": fix.get("kind"),
        "FixTarget": fix.get("target"),
        "FixStatement": json.dumps(fix["statement"], sort_keys=True)
        if fix.get("statement")
        else None,
        "FixCommands": "\n".join(fix.get("commands") or []) or None,
    }
    return {
        PRODUCT_FIELD_PREFIX + name: truncate(str(value), MAX_PRODUCT_FIELD)
        for name, value in values.items()
        if value
    }


def build_finding(
    row: dict[str, Any],
    *,
    account_id: str,
    partition: str,
    product: str,
    observed_at: datetime,
    updated_at: datetime,
) -> dict[str, Any]:
    """The ASFF finding of one failing check (a row of storage's latest_results)."""
    since = row.get("failing_since") or observed_at
    who = f"{row['account_id']}" + (f" ({row['account_name']})" if row.get("account_name") else "")
    title = (
        f"Backup role {role_name(row['role_arn'])} cannot {row['check']} in {who}, {row['region']}"
    )
    description = (
        f"{row['role_arn']} cannot perform {row['check']} on {row.get('resource') or '*'} "
        f"in account {who}, OU path {row.get('ou_path_names') or '?'}, region {row['region']}: "
        f"{_cause(row)}. {row.get('message') or ''}"
    ).strip()
    finding = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(row["check_key"]),
        "ProductArn": product,
        "GeneratorId": GENERATOR_ID,
        "AwsAccountId": account_id,
        "Types": list(FINDING_TYPES),
        "CreatedAt": iso(since),
        "UpdatedAt": iso(updated_at),
        "FirstObservedAt": iso(since),
        "LastObservedAt": iso(observed_at),
        "Severity": {"Label": SEVERITY_LABEL, "Original": SEVERITY_LABEL},
        "FindingProviderFields": {
            "Severity": {"Label": SEVERITY_LABEL, "Original": SEVERITY_LABEL},
            "Types": list(FINDING_TYPES),
        },
        "Title": truncate(title, MAX_TITLE),
        "Description": truncate(description, MAX_DESCRIPTION),
        "Remediation": {"Recommendation": {"Text": _recommendation(row.get("remediation") or {})}},
        "ProductFields": _product_fields(row),
        "Resources": _resources(row, partition),
        "Compliance": {"Status": "FAILED"},
        "RecordState": "ACTIVE",
    }
    return _within_size(finding)


def _within_size(finding: dict[str, Any]) -> dict[str, Any]:
    """Drop the longest product fields until the finding fits in MAX_FINDING_BYTES."""
    while finding_size(finding) > MAX_FINDING_BYTES and finding["ProductFields"]:
        longest = max(finding["ProductFields"], key=lambda k: len(finding["ProductFields"][k]))
        del finding["ProductFields"][longest]
    return finding


def finding_size(finding: dict[str, Any]) -> int:
    return len(json.dumps(finding, separators=(",", ":")).encode())


def resolved_finding(
    active: dict[str, Any], *, now: datetime, compliance: str = "PASSED"
) -> dict[str, Any]:
    """An active finding of ours, closed: its check passes now (PASSED), or no longer
    exists, e.g. the role was deleted (NOT_AVAILABLE: there is nothing left to check)."""
    closed = {name: active[name] for name in _KEPT_ON_RESOLVE if name in active}
    closed["ProductFields"] = {
        name: value
        for name, value in (active.get("ProductFields") or {}).items()
        if name.startswith(PRODUCT_FIELD_PREFIX)  # Security Hub adds aws/... fields itself
    }
    closed.update(
        UpdatedAt=iso(now),
        LastObservedAt=iso(now),
        Compliance={"Status": compliance},
        RecordState="ARCHIVED",
    )
    return closed


def batches(findings: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(findings), MAX_FINDINGS_PER_REQUEST):
        yield findings[start : start + MAX_FINDINGS_PER_REQUEST]


@dataclass
class SyncResult:
    imported: int = 0  # failing checks sent (new or updated)
    new: int = 0  # of those, without an active finding before
    resolved: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)  # FailedFindings entries


def active_findings(client: Any, product: str) -> list[dict[str, Any]]:
    """Our findings Security Hub holds as ACTIVE (filtered here too, in case the endpoint
    ignores filters)."""
    filters = {
        "ProductArn": [{"Value": product, "Comparison": "EQUALS"}],
        "GeneratorId": [{"Value": GENERATOR_ID, "Comparison": "EQUALS"}],
        "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
    }
    found = []
    for page in client.get_paginator("get_findings").paginate(
        Filters=filters, PaginationConfig={"PageSize": 100}
    ):
        found.extend(
            item
            for item in page["Findings"]
            if item.get("ProductArn") == product
            and item.get("GeneratorId") == GENERATOR_ID
            and item.get("RecordState", "ACTIVE") == "ACTIVE"
        )
    return found


def plan(
    scan: ScanFindings,
    active: Iterable[dict[str, Any]],
    *,
    account_id: str,
    partition: str,
    product: str,
    now: datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(findings of failing checks, closing findings of checks no longer failing)."""
    failing = [
        build_finding(
            row,
            account_id=account_id,
            partition=partition,
            product=product,
            observed_at=scan.finished_at,
            updated_at=now,
        )
        for row in scan.failing
    ]
    failing_ids = {finding["Id"] for finding in failing}
    in_error = {finding_id(row["check_key"]) for row in scan.in_error}
    known = {finding_id(row["check_key"]) for row in scan.results}  # every key not gone
    closing = [
        resolved_finding(
            item, now=now, compliance="PASSED" if item["Id"] in known else "NOT_AVAILABLE"
        )
        for item in active
        if item["Id"] not in failing_ids and item["Id"] not in in_error
    ]
    return failing, closing


def sync_findings(
    client: Any,
    scan: ScanFindings,
    *,
    account_id: str,
    region: str,
    partition: str = "aws",
    now: datetime | None = None,
) -> SyncResult:
    """Bring Security Hub in line with `scan` (see the module docstring)."""
    now = now or datetime.now(UTC)
    product = product_arn(partition, region, account_id)
    active = active_findings(client, product)
    failing, closing = plan(
        scan, active, account_id=account_id, partition=partition, product=product, now=now
    )
    known = {item["Id"] for item in active}
    result = SyncResult(
        imported=len(failing),
        new=sum(1 for f in failing if f["Id"] not in known),
        resolved=len(closing),
    )
    for batch in batches(failing + closing):
        response = client.batch_import_findings(Findings=batch)
        result.failed.extend(response.get("FailedFindings") or [])
    log.info(
        "security hub synced run_id=%s imported=%s new=%s resolved=%s failed=%s",
        scan.run_id,
        result.imported,
        result.new,
        result.resolved,
        len(result.failed),
    )
    return result


class SecurityHubOutlet:
    """The post-scan step: `sync_findings` with a client built by the command layer."""

    name = "securityhub"

    def __init__(self, client: Any, *, account_id: str, region: str, partition: str) -> None:
        self._client = client
        self._account_id = account_id
        self._region = region
        self._partition = partition

    def publish(self, scan: ScanFindings) -> None:
        result = sync_findings(
            self._client,
            scan,
            account_id=self._account_id,
            region=self._region,
            partition=self._partition,
        )
        if result.failed:
            first = result.failed[0]
            raise RuntimeError(
                f"Security Hub rejected {len(result.failed)} finding(s), e.g. {first.get('Id')}: "
                f"{first.get('ErrorCode')} {first.get('ErrorMessage')}"
            )
