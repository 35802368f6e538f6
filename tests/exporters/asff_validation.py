"""ASFF checks for tests: botocore's own model of BatchImportFindings (the SDK's service
definition: required members and types of AwsSecurityFinding and every nested shape), plus
the limits the Security Hub API Reference states in prose, which the model leaves out."""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

# The required top-level attributes of the user guide, which also requires Severity and
# Types (https://docs.aws.amazon.com/securityhub/latest/userguide/asff-required-attributes.html)
GUIDE_REQUIRED = (
    "AwsAccountId",
    "CreatedAt",
    "Description",
    "GeneratorId",
    "Id",
    "ProductArn",
    "Resources",
    "SchemaVersion",
    "Severity",
    "Title",
    "Types",
    "UpdatedAt",
)
# https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_AwsSecurityFinding.html
LENGTH_LIMITS = {"Title": 256, "Description": 1024, "AwsAccountId": 12}
RECOMMENDATION_LIMIT = 512  # API_Recommendation.html
MAX_FINDING_BYTES = 240 * 1024  # API_BatchImportFindings.html
# The Timestamps section of https://docs.aws.amazon.com/securityhub/1.0/APIReference/Welcome.html
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}(:?\d{2})?)$")
TIMESTAMP_FIELDS = ("CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt")
SEVERITY_LABELS = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")


def _model() -> Any:
    return botocore.session.get_session().get_service_model("securityhub")


def required_fields() -> list[str]:
    model_required = _model().shape_for("AwsSecurityFinding").required_members
    return sorted(set(model_required) | set(GUIDE_REQUIRED))


def problems(finding: dict[str, Any]) -> list[str]:
    """Everything wrong with one finding; empty when it is valid."""
    model = _model()
    found: list[str] = []
    report = ParamValidator().validate(
        {"Findings": [finding]}, model.operation_model("BatchImportFindings").input_shape
    )
    if report.has_errors():
        found.append(report.generate_report())
    for name in required_fields():
        if name not in finding:
            found.append(f"{name}: required")
    for name, limit in LENGTH_LIMITS.items():
        if len(str(finding.get(name, ""))) > limit:
            found.append(f"{name}: longer than {limit}")
    if len(str(finding.get("AwsAccountId", ""))) != 12:
        found.append("AwsAccountId: must be 12 digits")
    text = ((finding.get("Remediation") or {}).get("Recommendation") or {}).get("Text", "")
    if len(text) > RECOMMENDATION_LIMIT:
        found.append(f"Remediation.Recommendation.Text: longer than {RECOMMENDATION_LIMIT}")
    for name in TIMESTAMP_FIELDS:
        if name in finding and not TIMESTAMP.match(finding[name]):
            found.append(f"{name}: not an ASFF timestamp: {finding[name]!r}")
    if (finding.get("Severity") or {}).get("Label") not in SEVERITY_LABELS:
        found.append("Severity.Label: not a severity label")
    if len(json.dumps(finding).encode()) > MAX_FINDING_BYTES:
        found.append("finding larger than 240 KB")
    return found
