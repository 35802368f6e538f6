"""CloudTrail-shaped events as EventBridge delivers them to SQS."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

SOURCES = {
    "iam": "iam.amazonaws.com",
    "kms": "kms.amazonaws.com",
    "organizations": "organizations.amazonaws.com",
    "backup": "backup.amazonaws.com",
}


def cloudtrail_event(
    service: str,
    name: str,
    account_id: str,
    request: dict[str, Any] | None = None,
    *,
    region: str = "us-east-1",
    response: dict[str, Any] | None = None,
    event_id: str | None = None,
    when: datetime | None = None,
    error_code: str | None = None,
) -> str:
    """The SQS message body of one EventBridge "AWS API Call via CloudTrail" event."""
    time = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventTime": time,
        "eventSource": SOURCES[service],
        "eventName": name,
        "awsRegion": region,
        "requestParameters": request,
        "responseElements": response,
        "eventID": event_id or str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account_id,
    }
    if error_code:
        detail["errorCode"] = error_code
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "AWS API Call via CloudTrail",
            "source": f"aws.{service}",
            "account": account_id,
            "time": time,
            "region": region,
            "resources": [],
            "detail": detail,
        }
    )
