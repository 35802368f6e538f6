"""The SQS loop: receive a burst, turn it into one plan, carry it out, then delete.

SQS delivers at least once, so everything here is idempotent: a message is deleted only
after the verdicts covering it are stored (a crash before that means a redelivery and
the same rescan again, which records no new drift). A message that fails is left on the
queue; SQS makes it visible again after the visibility timeout and, after the redrive
policy's maxReceiveCount receives, moves it to the dead-letter queue. A malformed message
is logged and counted and never stops the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scanner.events.coalesce import Plan
from scanner.events.parse import ChangeEvent, MalformedEvent, parse_message
from scanner.events.rescan import RescanReport, run_plan
from scanner.events.scope import Ignored, work_for
from scanner.vocabulary import COMPLETE_RUN_STATUSES

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from exporters.event_metrics import EventMetrics
    from scanner.aws.queue import EventQueue, QueueMessage
    from scanner.aws.session import AwsSessions
    from scanner.config import Settings

log = logging.getLogger(__name__)

# A full scan requested by an event (a policy type enabled or disabled): returns once the
# scan has stored its verdicts, False when it could not run.
FullScan = Callable[[str], bool]
RECEIVE_ERROR_BACKOFF_SECONDS = 5.0


@dataclass
class Batch:
    messages: list[QueueMessage] = field(default_factory=list)
    events: dict[str, ChangeEvent] = field(default_factory=dict)  # message id -> event
    to_delete: list[QueueMessage] = field(default_factory=list)  # ignored: delete at once
    plan: Plan = field(default_factory=Plan)
    duplicates: int = 0
    malformed: set[str] = field(default_factory=set)  # message ids


class EventConsumer:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        sessions: AwsSessions,
        queue: EventQueue,
        *,
        metrics: EventMetrics | None = None,
        full_scan: FullScan | None = None,
        stop_event: threading.Event | None = None,
        after_run: Callable[[int], None] | None = None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._sessions = sessions
        self._queue = queue
        self._metrics = metrics
        self._full_scan = full_scan
        # publishes a stored rescan to the outlets (scanner.outlets.after_scan_step)
        self._after_run = after_run
        self.stopping = stop_event or threading.Event()
        self._max_receives: int | None = None
        self._max_receives_read = False
        self.last_report: RescanReport | None = None

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        log.info("event consumer started queue=%s", self._queue.url)
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # the queue or the database is unreachable
                log.error("event queue poll failed error=%s: %s", type(exc).__name__, exc)
                self.stopping.wait(RECEIVE_ERROR_BACKOFF_SECONDS)
        log.info("event consumer stopped")

    def poll_once(self) -> Batch:
        """Receive one burst and process it. Never raises for a message's own failure."""
        batch = self._receive()
        if batch.messages:
            self._process(batch)
        return batch

    # --- receiving ---------------------------------------------------------------------

    def _receive(self) -> Batch:
        events = self._settings.events
        batch = Batch()
        first = self._queue.receive(wait_seconds=events.wait_seconds)
        if not first:
            return batch
        deadline = time.monotonic() + events.batch_seconds
        self._add(batch, first)
        while (
            len(batch.messages) < events.max_batch_messages
            and time.monotonic() < deadline
            and not self.stopping.is_set()
        ):
            more = self._queue.receive(wait_seconds=min(1, events.wait_seconds))
            if more:
                self._add(batch, more)
        return batch

    def _add(self, batch: Batch, messages: list[QueueMessage]) -> None:
        seen = {event.event_id for event in batch.events.values()}
        for message in messages:
            known = next(
                (n for n, m in enumerate(batch.messages) if m.message_id == message.message_id),
                None,
            )
            if known is not None:
                # back within the batch (its visibility timeout ran out): keep the newest
                # receipt handle, the one a delete must use
                batch.messages[known] = message
                batch.to_delete = [
                    message if m.message_id == message.message_id else m for m in batch.to_delete
                ]
                if message.message_id not in batch.malformed:
                    continue
            else:
                batch.messages.append(message)
            self._count("received")
            try:
                event = parse_message(message.body)
            except MalformedEvent as exc:
                batch.malformed.add(message.message_id)
                self._count("failed", "malformed")
                self._give_up_or_retry(message, f"malformed event: {exc}")
                continue
            work = work_for(event, self._settings)
            if isinstance(work, Ignored):
                log.info(
                    "event ignored event=%s account=%s reason=%s",
                    event.name,
                    event.account_id,
                    work.reason,
                )
                self._count("ignored")
                batch.to_delete.append(message)
                continue
            if event.event_id and event.event_id in seen:
                batch.duplicates += 1  # the same CloudTrail event delivered twice
            seen.add(event.event_id)
            batch.events[message.message_id] = event
            batch.plan.add(work)
            log.info(
                "event received event=%s account=%s region=%s id=%s",
                event.name,
                event.account_id,
                event.region,
                event.event_id,
            )

    # --- processing --------------------------------------------------------------------

    def _process(self, batch: Batch) -> None:
        for message in batch.to_delete:
            self._delete(message)
        if not batch.events:
            return
        plan = batch.plan
        if plan.coalesced and self._metrics is not None:
            self._metrics.coalesced.inc(plan.coalesced)
        pending = [m for m in batch.messages if m.message_id in batch.events]
        try:
            report = run_plan(
                plan, self._settings, self._engine, self._sessions, stop_event=self.stopping
            )
            if report.full_scan and not self._run_full_scan(report.full_scan):
                raise RuntimeError(f"the full scan for {report.full_scan} did not run")
        except Exception as exc:
            log.error(
                "event processing failed error=%s: %s; %d message(s) stay on the queue",
                type(exc).__name__,
                exc,
                len(pending),
            )
            log.debug("event processing traceback", exc_info=True)
            for message in pending:
                self._count("failed", "processing")
                self._give_up_or_retry(message, f"{type(exc).__name__}: {exc}")
            return
        self.last_report = report
        stored = datetime.now(UTC)
        log.info(
            "event rescan stored run_id=%s events=%d coalesced=%d collected=%s "
            "redecided_accounts=%s redecided_checks=%d seconds=%.2f drift=%s",
            report.run_id,
            len(batch.events),
            plan.coalesced,
            ",".join(report.accounts_collected) or "-",
            ",".join(report.accounts_redecided) or "-",
            report.checks_redecided,
            report.seconds,
            report.totals.drift if report.totals else {},
        )
        for message in pending:
            event = batch.events[message.message_id]
            if self._metrics is not None:
                self._metrics.latency.observe(max((stored - event.time).total_seconds(), 0.0))
            self._delete(message)
        self._publish(report)

    def _publish(self, report: RescanReport) -> None:
        """Hand a rescan that stored verdicts to the outlets; never fails the batch."""
        totals = report.totals
        if self._after_run is None or report.run_id is None or totals is None:
            return
        if totals.status not in COMPLETE_RUN_STATUSES:
            return
        try:
            self._after_run(report.run_id)
        except Exception as exc:  # an outlet never fails event processing
            log.error("post-rescan step failed error=%s: %s", type(exc).__name__, exc)

    def _run_full_scan(self, reason: str) -> bool:
        if self._full_scan is None:
            log.warning("event needs a full scan (%s) but none can be started here", reason)
            return True  # the next scheduled scan covers it
        log.info("event starts a full scan reason=%s", reason)
        return self._full_scan(reason)

    def _delete(self, message: QueueMessage) -> None:
        try:
            self._queue.delete(message)
        except Exception as exc:  # it will be delivered again and processed again
            log.warning(
                "could not delete message %s error=%s: %s",
                message.message_id,
                type(exc).__name__,
                exc,
            )

    def _give_up_or_retry(self, message: QueueMessage, reason: str) -> None:
        """Leave the message on the queue; say so clearly when this was its last try."""
        limit = self._max_receive_count()
        if limit is not None and message.receive_count >= limit:
            log.error(
                "message %s failed on its last try (%d of %d): SQS moves it to the "
                "dead-letter queue. Reason: %s",
                message.message_id,
                message.receive_count,
                limit,
                reason,
            )
        else:
            log.warning(
                "message %s failed (try %d of %s), left on the queue for a retry: %s",
                message.message_id,
                message.receive_count,
                limit if limit is not None else "unlimited: the queue has no dead-letter queue",
                reason,
            )

    def _max_receive_count(self) -> int | None:
        if not self._max_receives_read:
            try:
                self._max_receives = self._queue.max_receive_count()
            except Exception as exc:
                log.warning("cannot read the queue's redrive policy: %s", exc)
                return None
            self._max_receives_read = True
        return self._max_receives

    def _count(self, what: str, reason: str | None = None) -> None:
        if self._metrics is None:
            return
        counter = getattr(self._metrics, what)
        (counter.labels(reason) if reason else counter).inc()
