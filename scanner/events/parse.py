"""One SQS message body -> one ChangeEvent, or MalformedEvent saying what is wrong.

The body is the EventBridge event as the rule's SQS target delivers it: an envelope
(`detail-type`, `source`, `account`, `time`, `region`) around CloudTrail's record in
`detail` (`eventSource`, `eventName`, `requestParameters`, `recipientAccountId`, ...).
EventBridge event structure:
https://docs.aws.amazon.com/eventbridge/latest/ref/overiew-event-structure.html
CloudTrail record contents:
https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
MAX_BODY_CHARS = 256 * 1024  # the SQS message size limit


class MalformedEvent(ValueError):
    """The message is not an EventBridge CloudTrail event; the message says why."""


@dataclass(frozen=True)
class ChangeEvent:
    """The parts of a CloudTrail management event that decide what to rescan."""

    event_id: str  # CloudTrail's eventID (EventBridge's id when absent)
    source: str  # eventSource, e.g. "iam.amazonaws.com"
    name: str  # eventName, e.g. "PutRolePolicy"
    account_id: str  # recipientAccountId: the account whose resource changed
    region: str  # awsRegion
    time: datetime  # eventTime: when the call was made
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    resources: tuple[str, ...] = ()  # ARNs from the envelope's and the record's resources
    error_code: str | None = None  # a failed call changed nothing

    @property
    def service(self) -> str:
        """ "iam", "kms", "organizations", "backup"."""
        return self.source.split(".", 1)[0]


def parse_message(body: str) -> ChangeEvent:
    """Parse an SQS message body; raise MalformedEvent for anything else."""
    if len(body) > MAX_BODY_CHARS:
        raise MalformedEvent(f"body of {len(body)} characters exceeds the SQS limit")
    try:
        envelope = json.loads(body)
    except ValueError as exc:
        raise MalformedEvent(f"body is not JSON ({exc})") from None
    if not isinstance(envelope, dict):
        raise MalformedEvent("body is not a JSON object")
    detail_type = envelope.get("detail-type")
    if detail_type != CLOUDTRAIL_DETAIL_TYPE:
        raise MalformedEvent(f"detail-type is {detail_type!r}, not {CLOUDTRAIL_DETAIL_TYPE!r}")
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("detail is missing or not an object")
    source = _text(detail, "eventSource")
    name = _text(detail, "eventName")
    account = str(detail.get("recipientAccountId") or envelope.get("account") or "")
    if not (len(account) == 12 and account.isdigit()):
        raise MalformedEvent(f"recipientAccountId {account!r} is not a 12-digit account id")
    return ChangeEvent(
        event_id=str(detail.get("eventID") or envelope.get("id") or ""),
        source=source,
        name=name,
        account_id=account,
        region=str(detail.get("awsRegion") or envelope.get("region") or ""),
        time=_time(detail.get("eventTime") or envelope.get("time")),
        request=_object(detail, "requestParameters"),
        response=_object(detail, "responseElements"),
        resources=_resources(envelope, detail),
        error_code=detail.get("errorCode") or None,
    )


def _text(detail: dict[str, Any], key: str) -> str:
    value = detail.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"detail.{key} is missing")
    return value


def _object(detail: dict[str, Any], key: str) -> dict[str, Any]:
    value = detail.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedEvent(f"detail.{key} is not an object")
    return value


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise MalformedEvent("eventTime is missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedEvent(f"eventTime {value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _resources(envelope: dict[str, Any], detail: dict[str, Any]) -> tuple[str, ...]:
    arns = [arn for arn in envelope.get("resources") or [] if isinstance(arn, str)]
    for item in detail.get("resources") or []:
        if isinstance(item, dict) and isinstance(item.get("ARN"), str):
            arns.append(item["ARN"])
    return tuple(dict.fromkeys(arns))
