"""Malformed AWS responses: a key policy that is not JSON, policy documents URL-encoded
(as IAM sends them), answers with fields missing. The scan never stops: a URL-encoded
document is read as the document it encodes, and anything unreadable is an error
recorded on its account, naming what was wrong."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from scanner.runner import run_scan


@contextmanager
def rewritten(session, event: str, change: Callable[[dict], None]) -> Iterator[list[int]]:
    """Apply `change` to every parsed answer of `event` ('kms.GetKeyPolicy'), after
    botocore's own after-call handlers (registered on the service: they run first)."""
    service, operation = event.split(".")
    count = [0]

    def handler(parsed: dict, model, **_: object) -> None:
        if model.name == operation and isinstance(parsed, dict) and "Error" not in parsed:
            change(parsed)
            count[0] += 1

    unique = f"fault-malformed-{event}"  # botocore keeps one handler per unique id
    session.events.register(f"after-call.{service}", handler, unique_id=unique)
    try:
        yield count
    finally:
        session.events.unregister(f"after-call.{service}", unique_id=unique)


def _accounts(engine, run_id: int) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT account_id, status, error FROM account_scans WHERE scan_run_id = :r"),
            {"r": run_id},
        ).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def _verdicts(engine, run_id: int) -> set[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        return {
            tuple(row)
            for row in conn.execute(
                text(
                    "SELECT check_key, status, deciding_layer FROM check_results "
                    "WHERE scan_run_id = :r"
                ),
                {"r": run_id},
            )
        }


def _url_encode_role_documents(parsed: dict) -> None:
    """Every role document URL-encoded once, as IAM sends them (the scanner's IAM clients
    leave them so; a client that decoded them hands over dicts or JSON text)."""
    for role in parsed.get("RoleDetailList", []):
        for item in role.get("RolePolicyList", []):
            document = item["PolicyDocument"]
            text_form = document if isinstance(document, str) else json.dumps(document)
            if not text_form.startswith(urllib.parse.quote("{")):
                item["PolicyDocument"] = urllib.parse.quote(text_form)


def test_url_encoded_documents_are_read_as_what_they_encode(mocked, db_engine) -> None:
    settings = mocked.settings(concurrency=2)
    baseline = run_scan(settings, engine=db_engine, sessions=mocked.sessions(settings))
    with rewritten(
        mocked.session, "iam.GetAccountAuthorizationDetails", _url_encode_role_documents
    ) as roles:
        encoded = run_scan(settings, engine=db_engine, sessions=mocked.sessions(settings))
    assert roles[0] > 0
    assert encoded.totals.status == baseline.totals.status
    assert _verdicts(db_engine, encoded.run_id) == _verdicts(db_engine, baseline.run_id)


def _not_json(parsed: dict) -> None:
    if "Policy" in parsed:
        parsed["Policy"] = '{"Version": "2012-10-17", "Statement": [ {"Effect": '


def _no_arn(parsed: dict) -> None:
    for role in parsed.get("RoleDetailList", []):
        role.pop("Arn", None)
        role.pop("RolePolicyList", None)


@pytest.mark.parametrize(
    ("event", "change", "words"),
    [
        ("kms.GetKeyPolicy", _not_json, ("not JSON",)),
        ("iam.GetAccountAuthorizationDetails", _no_arn, ("Arn",)),
    ],
    ids=["key-policy-not-json", "role-without-arn"],
)
def test_malformed_answers_are_recorded_on_their_accounts(
    mocked, db_engine, event: str, change, words: tuple[str, ...]
) -> None:
    settings = mocked.settings(concurrency=2)
    with rewritten(mocked.session, event, change) as count:
        report = run_scan(settings, engine=db_engine, sessions=mocked.sessions(settings))
    assert count[0] > 0
    accounts = _accounts(db_engine, report.run_id)
    assert len(accounts) == len(mocked.sandbox.accounts)  # every account recorded once
    with db_engine.connect() as conn:
        errored_checks = conn.execute(
            text(
                "SELECT account_id, message FROM check_results "
                "WHERE scan_run_id = :r AND status = 'error'"
            ),
            {"r": report.run_id},
        ).all()
    errors = [e for s, e in accounts.values() if s == "error"] + [m for _, m in errored_checks]
    assert errors, "the malformed answer left no trace"
    for error in errors:
        assert error and any(word.lower() in error.lower() for word in words), error
        assert "Traceback" not in error
