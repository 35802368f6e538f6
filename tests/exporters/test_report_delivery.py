"""Report delivery: a directory, S3 (moto) and e-mail to a local SMTP server (aiosmtpd),
from the library, the `report --deliver` command and serve's scheduled job."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import boto3
import pytest
from metrics_seed import seed_small
from moto import mock_aws
from sqlalchemy import Engine, create_engine

from exporters.report import build_report
from exporters.report.delivery import DeliveryError, deliver, deliver_or_raise
from scanner import cli
from scanner.config import ReportSettings
from storage.migrate import upgrade


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = create_engine(database_url)
    seed_small(engine)
    yield engine
    engine.dispose()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_directory_s3_and_email_all_receive_the_report(engine, smtp, tmp_path: Path) -> None:
    inbox, port = smtp
    report = build_report(engine, days=7)
    settings = ReportSettings(
        formats=["html", "md", "csv"],
        delivery={
            "directory": str(tmp_path / "reports"),
            "s3_uri": "s3://vaultscan-reports/weekly",
            "email": {
                "to": ["security@example.com", "backup-team@example.com"],
                "sender": "vaultscan@example.com",
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
            },
        },
    )
    day = f"{report.period_end:%Y-%m-%d}"
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="vaultscan-reports")
        delivered = deliver_or_raise(report, settings, s3_client=s3)
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="vaultscan-reports")["Contents"]}
        html = s3.get_object(Bucket="vaultscan-reports", Key=f"weekly/vaultscan-report-{day}.html")
        assert html["ContentType"] == "text/html; charset=utf-8"
        assert b"<svg" in html["Body"].read()
    names = {f"vaultscan-report-{day}.{ext}" for ext in ("html", "md", "csv")}
    assert keys == {f"weekly/{name}" for name in names}
    assert {p.name for p in (tmp_path / "reports").iterdir()} == names
    assert "## Daily trend" in (tmp_path / "reports" / f"vaultscan-report-{day}.md").read_text()
    assert "mailto:security@example.com" in delivered
    [(sender, recipients, message)] = inbox.messages
    assert sender == "vaultscan@example.com"
    assert recipients == ["security@example.com", "backup-team@example.com"]
    assert message["Subject"] == f"vaultscan report {day}"
    attachments = {part.get_filename() for part in message.walk() if part.get_filename()}
    assert attachments == names
    bodies = [p.get_content_type() for p in message.walk() if not p.get_filename()]
    assert "text/html" in bodies and "text/plain" in bodies


def test_a_failing_destination_stops_no_other(engine, tmp_path: Path) -> None:
    report = build_report(engine, days=7)
    settings = ReportSettings(
        delivery={
            "directory": str(tmp_path),
            "email": {"to": ["a@example.com"], "smtp_host": "127.0.0.1", "smtp_port": _free_port()},
        }
    )
    result = deliver(report, settings)
    assert [Path(p).name for p in result.delivered] == [
        f"vaultscan-report-{report.period_end:%Y-%m-%d}.html"
    ]
    [failure] = result.failed
    assert failure.startswith("smtp://127.0.0.1:") and "ConnectionRefused" in failure
    with pytest.raises(DeliveryError, match="smtp://127.0.0.1"):
        deliver_or_raise(report, settings)
    with pytest.raises(DeliveryError, match="no delivery destination configured"):
        deliver_or_raise(report, ReportSettings())


def test_report_command_delivers_from_the_configuration(
    engine, database_url, tmp_path: Path, capsys
) -> None:
    config = tmp_path / "vaultscan.yaml"
    out = tmp_path / "out"
    config.write_text(
        f"report:\n  days: 30\n  formats: [html, json]\n  delivery:\n    directory: {out}\n"
    )
    args = ["report", "--deliver", "--config", str(config), "--database-url", database_url]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert sorted(p.suffix for p in out.iterdir()) == [".html", ".json"]
    assert f"delivered {out}" in err
    assert '"days": 30' in next(out.glob("*.json")).read_text()
    config.write_text(
        "report:\n  delivery:\n    email:\n      to: [a@example.com]\n"
        f"      smtp_port: {_free_port()}\n"
    )
    assert cli.main(args) == 2
    assert "report delivery failed: smtp://localhost:" in capsys.readouterr().err


def test_serve_delivers_on_its_schedule_one_replica_at_a_time(engine, tmp_path: Path) -> None:
    import threading

    from scanner.config import ScheduleSettings, Settings
    from scanner.service import ScanService, build_scheduler, deliver_scheduled_report
    from storage.locks import REPORT_LOCK_KEY, try_lock

    settings = Settings(report={"schedule": "0 7 * * 1", "delivery": {"directory": str(tmp_path)}})
    with try_lock(engine, REPORT_LOCK_KEY) as held:  # another replica is delivering
        assert held
        assert deliver_scheduled_report(engine, settings.report) is None
    assert list(tmp_path.iterdir()) == []
    delivered = deliver_scheduled_report(engine, settings.report)
    assert delivered is not None and len(list(tmp_path.iterdir())) == 1
    service = ScanService(settings, engine, scan=lambda *a, **k: threading.Event())
    scheduler = build_scheduler(service, ScheduleSettings(), settings.retention)
    try:
        job = scheduler.get_job("report")
        assert job is not None and "day_of_week='1'" in str(job.trigger)
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
