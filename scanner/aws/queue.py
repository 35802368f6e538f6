"""The SQS queue of CloudTrail events: receive, delete, and read its redrive policy.

The scanner's own identity calls SQS (sqs:ReceiveMessage, sqs:DeleteMessage,
sqs:GetQueueAttributes: scanner.aws.permissions.EVENT_QUEUE_ACTIONS). SQS delivers each
message at least once; a message that is not deleted becomes visible again after the
visibility timeout, and after the redrive policy's maxReceiveCount receives SQS moves it
to the dead-letter queue:
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from scanner.aws.session import AwsSessions

log = logging.getLogger(__name__)

MAX_MESSAGES = 10  # ReceiveMessage's maximum per call


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    receipt: str
    body: str
    receive_count: int  # ApproximateReceiveCount, 1 on the first delivery


def queue_region(queue_url: str, default: str) -> str:
    """https://sqs.eu-west-1.amazonaws.com/111122223333/q -> eu-west-1."""
    host = queue_url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 3 and parts[0] == "sqs":
        return parts[1]
    return default


class EventQueue:
    def __init__(self, sessions: AwsSessions, queue_url: str, region: str) -> None:
        self.url = queue_url
        self._client: Any = sessions.client("sqs", queue_region(queue_url, region))

    def receive(self, *, wait_seconds: int, max_messages: int = MAX_MESSAGES) -> list[QueueMessage]:
        """Long-poll for up to `max_messages` messages."""
        response = self._client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(max_messages, MAX_MESSAGES)),
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            QueueMessage(
                message_id=raw["MessageId"],
                receipt=raw["ReceiptHandle"],
                body=raw.get("Body", ""),
                receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for raw in response.get("Messages", [])
        ]

    def delete(self, message: QueueMessage) -> None:
        self._client.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt)

    def max_receive_count(self) -> int | None:
        """The redrive policy's maxReceiveCount, or None when the queue has no DLQ."""
        attributes = self._client.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["RedrivePolicy"]
        ).get("Attributes", {})
        raw = attributes.get("RedrivePolicy")
        if not raw:
            return None
        try:
            return int(json.loads(raw)["maxReceiveCount"])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable redrive policy on %s: %s", self.url, raw)
            return None
