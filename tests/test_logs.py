"""The service's log helpers: progress every few seconds, JSON lines."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest

from scanner.logs import JsonLinesFormatter, ProgressLog, use_json_lines
from scanner.model import Account


def test_progress_is_logged_every_interval_until_the_scan_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="scanner.progress")
    with ProgressLog(interval=0.05) as progress:
        time.sleep(0.12)  # the organization is still being listed: nothing to say yet
        assert caplog.records == []
        progress(4, 10, Account(id="111122223333", name="a"))
        time.sleep(0.2)
    lines = [r for r in caplog.records if r.name == "scanner.progress"]
    assert len(lines) >= 2, "progress must repeat while the scan runs"
    assert all(r.getMessage() == "scan progress: 4 of 10 accounts done" for r in lines)
    assert lines[-1].last_account == "111122223333" and lines[-1].eta_s >= 0
    count = len(caplog.records)
    time.sleep(0.15)
    assert len(caplog.records) == count, "progress must stop with the scan"


def test_json_lines_carry_extra_fields_and_mask_secrets() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        handler.setFormatter(JsonLinesFormatter())
        logger.warning(
            "assume role failed",
            extra={"account": "111122223333", "url": "postgresql://u:hunter2@db/v"},
        )
    finally:
        logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "test.json"
    assert entry["message"] == "assume role failed" and entry["account"] == "111122223333"
    assert "hunter2" not in line


def test_use_json_lines_switches_the_root_handlers() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        use_json_lines()
        assert isinstance(handler.formatter, JsonLinesFormatter)
    finally:
        root.removeHandler(handler)
