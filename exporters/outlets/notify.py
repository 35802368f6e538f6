"""Notifications on drift: one message per scan that changed something, regressions first
(account, OU, role, check, the deciding layer, policy and statement, the fix, the finding
id), then fixes. Lists longer than `max_items` are cut and the rest counted, so a message
stays small for any organization. Outlets: Slack incoming webhook (Block Kit), Amazon SNS,
and a generic webhook signed with HMAC-SHA256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from exporters.outlets import ScanFindings, iso, truncate
from exporters.outlets.delivery import MAX_BODY_BYTES, RetryPolicy, post, with_retries
from exporters.outlets.securityhub import finding_id
from scanner.policy.arn import role_name

SIGNATURE_HEADER = "X-Vaultscan-Signature"
TIMESTAMP_HEADER = "X-Vaultscan-Timestamp"
PAYLOAD_SCHEMA = "vaultscan.drift/v1"
SLACK_TEXT_LIMIT = 3000  # characters of a section block's text (Block Kit reference)
SLACK_HEADER_LIMIT = 150
SLACK_MAX_ITEMS = 20  # per list: Block Kit allows 50 blocks per message
SNS_SUBJECT_LIMIT = 100


@dataclass(frozen=True)
class Change:
    account_id: str
    account_name: str
    ou_path: str
    region: str
    role_arn: str
    check: str
    layer: str | None
    policy: str | None
    statement: str | None
    fix: str | None
    finding_id: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DriftMessage:
    run_id: int
    finished_at: str
    regressions: list[Change]
    regressions_total: int
    fixes: list[Change]
    fixes_total: int
    link_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": PAYLOAD_SCHEMA,
            "run_id": self.run_id,
            "finished_at": self.finished_at,
            "regressions_total": self.regressions_total,
            "regressions": [change.as_dict() for change in self.regressions],
            "fixes_total": self.fixes_total,
            "fixes": [change.as_dict() for change in self.fixes],
            "link_url": self.link_url,
        }


def _change(row: dict[str, Any]) -> Change:
    fix = row.get("remediation") or {}
    return Change(
        account_id=row["account_id"],
        account_name=row.get("account_name") or "",
        ou_path=row.get("ou_path_names") or "",
        region=row["region"],
        role_arn=row["role_arn"],
        check=row["check"],
        layer=row.get("deciding_layer"),
        policy=row.get("policy"),
        statement=row.get("statement"),
        fix=fix.get("summary"),
        finding_id=finding_id(row["check_key"]),
    )


def build_message(
    scan: ScanFindings, *, max_items: int, link_url: str | None = None
) -> DriftMessage | None:
    """The message for `scan`, or None when it changed nothing worth telling.

    Regressions are checks that went from pass to fail and new checks that fail from the
    start; fixes went from fail to pass."""
    regressed = scan.regressions()
    fixed = scan.fixes()
    if not regressed and not fixed:
        return None
    return DriftMessage(
        run_id=scan.run_id,
        finished_at=iso(scan.finished_at),
        regressions=[_change(row) for row in regressed[:max_items]],
        regressions_total=len(regressed),
        fixes=[_change(row) for row in fixed[:max_items]],
        fixes_total=len(fixed),
        link_url=link_url,
    )


# --- text -------------------------------------------------------------------------------


def _who(change: Change) -> str:
    name = f" ({change.account_name})" if change.account_name else ""
    ou = f" in {change.ou_path}" if change.ou_path else ""
    return f"account {change.account_id}{name}{ou}, {change.region}"


def _cause(change: Change) -> str:
    if not change.layer:
        return ""
    parts = [f"denied by the {change.layer} layer"]
    if change.policy:
        parts.append(f"policy {change.policy}")
    if change.statement:
        parts.append(f"statement {change.statement}")
    return ", ".join(parts)


def headline(message: DriftMessage) -> str:
    return (
        f"vaultscan run {message.run_id}: {message.regressions_total} regression(s), "
        f"{message.fixes_total} fix(es)"
    )


def plain_text(message: DriftMessage) -> str:
    """The message as plain text (SNS e-mail and SMS subscribers, logs)."""
    lines = [headline(message), ""]
    if message.regressions_total:
        lines.append("REGRESSIONS")
        for change in message.regressions:
            lines.append(f"- {role_name(change.role_arn)} cannot {change.check}: {_who(change)}")
            if _cause(change):
                lines.append(f"  cause: {_cause(change)}")
            if change.fix:
                lines.append(f"  fix: {change.fix}")
            lines.append(f"  finding: {change.finding_id}")
        _more(lines, message.regressions_total, len(message.regressions), "regression")
        lines.append("")
    if message.fixes_total:
        lines.append("FIXED")
        for change in message.fixes:
            lines.append(f"- {role_name(change.role_arn)} can {change.check} again: {_who(change)}")
        _more(lines, message.fixes_total, len(message.fixes), "fix")
        lines.append("")
    if message.link_url:
        lines.append(f"details: {message.link_url}")
    lines.append("all verdicts: vaultscan results --status fail")
    return "\n".join(lines).strip() + "\n"


def _more(lines: list[str], total: int, shown: int, noun: str) -> None:
    if total > shown:
        lines.append(f"... and {total - shown} more {noun}(s): vaultscan results --status fail")


# --- Slack ------------------------------------------------------------------------------


def _mrkdwn(text: str) -> str:
    # Slack's escaping for the three control characters of mrkdwn
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SLACK_TEXT_LIMIT)}}


def slack_payload(message: DriftMessage) -> dict[str, Any]:
    """Block Kit blocks (https://api.slack.com/reference/block-kit/blocks), with `text` as
    the notification fallback."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(headline(message), SLACK_HEADER_LIMIT)},
        }
    ]
    if message.regressions_total:
        blocks.append(_section(f"*:red_circle: Regressions ({message.regressions_total})*"))
        for change in message.regressions[:SLACK_MAX_ITEMS]:
            text = (
                f"*{_mrkdwn(role_name(change.role_arn))}* cannot `{_mrkdwn(change.check)}`: "
                f"{_mrkdwn(_who(change))}"
            )
            if _cause(change):
                text += f"\n*Cause:* {_mrkdwn(_cause(change))}"
            if change.fix:
                text += f"\n*Fix:* {_mrkdwn(change.fix)}"
            text += f"\n*Finding:* `{change.finding_id}`"
            blocks.append(_section(text))
        shown = min(len(message.regressions), SLACK_MAX_ITEMS)
        if message.regressions_total > shown:
            blocks.append(_section(f"… and {message.regressions_total - shown} more regression(s)"))
    if message.fixes_total:
        blocks.append(_section(f"*:large_green_circle: Fixed ({message.fixes_total})*"))
        lines = [
            f"• *{_mrkdwn(role_name(c.role_arn))}* `{_mrkdwn(c.check)}`: {_mrkdwn(_who(c))}"
            for c in message.fixes[:SLACK_MAX_ITEMS]
        ]
        shown = len(lines)
        if message.fixes_total > shown:
            lines.append(f"… and {message.fixes_total - shown} more fix(es)")
        blocks.append(_section("\n".join(lines)))
    footer = f"run {message.run_id}, finished {message.finished_at}"
    if message.link_url:
        footer += f" · <{message.link_url}|details>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return {"text": headline(message), "blocks": blocks}


# --- outlets ----------------------------------------------------------------------------


class _Notifier:
    name = "notification"

    def __init__(
        self,
        *,
        max_items: int = 10,
        retry: RetryPolicy | None = None,
        link_url: str | None = None,
        on_retry: Any = None,
        sleep: Any = time.sleep,
    ) -> None:
        self._max_items = max_items
        self._retry = retry or RetryPolicy()
        self._link_url = link_url
        self.on_retry = on_retry
        self._sleep = sleep

    def publish(self, scan: ScanFindings) -> None:
        message = build_message(scan, max_items=self._max_items, link_url=self._link_url)
        if message is None:
            return  # nothing changed: no message
        with_retries(
            self.name,
            lambda: self.send(message),
            self._retry,
            on_retry=self.on_retry,
            sleep=self._sleep,
        )

    def send(self, message: DriftMessage) -> None:
        raise NotImplementedError


class SlackOutlet(_Notifier):
    name = "slack"

    def __init__(self, webhook_url: str, **options: Any) -> None:
        super().__init__(**options)
        self._url = webhook_url

    def send(self, message: DriftMessage) -> None:
        body = json.dumps(slack_payload(message)).encode()
        post(self._url, body, {"Content-Type": "application/json"}, self._retry.timeout_seconds)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: HMAC-SHA256 over "<timestamp>.<body>" (the timestamp
    header's value), hex, prefixed "sha256="; binding the timestamp stops replays."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookOutlet(_Notifier):
    name = "webhook"

    def __init__(self, url: str, secret: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._url = url
        self._secret = secret

    def send(self, message: DriftMessage) -> None:
        body = json.dumps(message.as_dict(), separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        post(self._url, body, headers, self._retry.timeout_seconds)


class SnsOutlet(_Notifier):
    """sns:Publish of the plain text (e-mail, SMS and chat subscribers read it as is);
    consumers that want structured data use the webhook outlet."""

    name = "sns"

    def __init__(self, client: Any, topic_arn: str, **options: Any) -> None:
        super().__init__(**options)
        self._client = client
        self._topic_arn = topic_arn

    def send(self, message: DriftMessage) -> None:
        # Subject: ASCII, at most 100 characters; Message: at most 256 KB
        # (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html)
        subject = headline(message)
        if len(subject) > SNS_SUBJECT_LIMIT:
            subject = subject[: SNS_SUBJECT_LIMIT - 3] + "..."
        text = plain_text(message).encode()[:MAX_BODY_BYTES].decode(errors="ignore")
        self._client.publish(TopicArn=self._topic_arn, Subject=subject, Message=text)
