"""A throttling storm on every AWS API the scanner calls: each request is refused with the
service's throttling error twice before it is let through. botocore's standard retries
absorb it: the scan is complete, identical to an unthrottled one, and every call took
exactly three requests. An API throttled for good costs one account, reported as
throttling."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from botocore.awsrequest import AWSResponse
from fault_harness import Stored
from sqlalchemy import text

from scanner.runner import run_scan

# Per protocol: what a throttled answer looks like (botocore parses it into the code).
QUERY = b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>"  # noqa: E501
JSON = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
PROTOCOL = {"iam": "query", "sts": "query", "organizations": "json", "kms": "json"}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: object):
        yield self.body


def throttled(service: str, url: str) -> AWSResponse:
    if PROTOCOL.get(service) == "query":
        return AWSResponse(url, 400, {"Content-Type": "text/xml"}, _Raw(QUERY))
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "x-amzn-ErrorType": "ThrottlingException",
    }
    return AWSResponse(url, 400, headers, _Raw(JSON))


class Storm:
    """Refuses each distinct request `refusals` times, then lets it through to moto."""

    def __init__(self, refusals: int, only: str | None = None) -> None:
        self.refusals = refusals
        self.only = only  # "service.Operation" to throttle, or every call
        self.seen: Counter[tuple[str, bytes]] = Counter()
        self.requests: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def __call__(self, request, event_name: str, **_: object):
        _, service, operation = event_name.split(".")[:3]
        name = f"{service}.{operation}"
        self.requests[name] += 1
        if self.only is not None and name != self.only:
            return None
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        auth = request.headers.get("Authorization", b"")
        auth = auth.decode() if isinstance(auth, bytes) else str(auth)
        caller = auth.split("Credential=", 1)[-1].split("/", 1)[0]  # the access key id
        key = (f"{caller} {request.url} {name}", body)
        self.seen[key] += 1
        if self.refusals < 0 or self.seen[key] <= self.refusals:
            self.refused[name] += 1
            return throttled(service, request.url)
        return None


def _stored(engine, run_id: int) -> Stored:
    with engine.connect() as conn:
        accounts = conn.execute(
            text("SELECT scan_run_id, account_id, status, error FROM account_scans")
        ).all()
        results = conn.execute(
            text("SELECT scan_run_id, account_id, check_key FROM check_results")
        ).all()
        runs = conn.execute(text("SELECT id, status, error FROM scan_runs")).all()
    return Stored(
        [tuple(r) for r in runs], [tuple(a) for a in accounts], [tuple(r) for r in results]
    )


def _verdicts(engine, run_id: int) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {
            (row[0], row[1])
            for row in conn.execute(
                text("SELECT check_key, status FROM check_results WHERE scan_run_id = :r"),
                {"r": run_id},
            )
        }


@pytest.mark.usefixtures("no_backoff")
def test_a_throttling_storm_on_every_api_is_absorbed(mocked, db_engine) -> None:
    settings = mocked.settings(concurrency=2)
    baseline = run_scan(settings, engine=db_engine, sessions=mocked.sessions(settings))
    storm = Storm(refusals=2)
    mocked.session.events.register_first("before-send", storm, unique_id="fault-storm")
    try:
        stormy = run_scan(settings, engine=db_engine, sessions=mocked.sessions(settings))
    finally:
        mocked.session.events.unregister("before-send", unique_id="fault-storm")
    print(
        f"throttling storm: {sum(storm.refused.values())} requests refused across "
        f"{len(storm.refused)} operations, {sum(storm.requests.values())} requests in all"
    )
    # every API the scanner calls was throttled
    services = {name.split(".")[0] for name in storm.refused}
    assert {"organizations", "sts", "iam", "kms"} <= services, storm.refused
    assert len(storm.refused) >= 8
    # ... and every call got through on its third request
    for name in storm.refused:
        calls = sum(1 for key in storm.seen if key[0].endswith(f" {name}"))
        assert storm.requests[name] == 3 * calls, name
    assert stormy.totals.status == baseline.totals.status == "succeeded"
    assert _verdicts(db_engine, stormy.run_id) == _verdicts(db_engine, baseline.run_id)
    state = _stored(db_engine, stormy.run_id)
    assert len(state.accounts_of(stormy.run_id)) == len(mocked.sandbox.accounts)


@pytest.mark.usefixtures("no_backoff")
def test_an_api_throttled_for_good_costs_accounts_not_the_scan(mocked, db_engine) -> None:
    settings = mocked.settings(concurrency=2)
    storm = Storm(refusals=-1, only="iam.GetAccountAuthorizationDetails")
    mocked.session.events.register_first("before-send", storm, unique_id="fault-storm")
    try:
        report = run_scan(settings, engine=db_engine, sessions=mocked.sessions(settings))
    finally:
        mocked.session.events.unregister("before-send", unique_id="fault-storm")
    state = _stored(db_engine, report.run_id)
    accounts = state.accounts_of(report.run_id)
    assert len(accounts) == len(mocked.sandbox.accounts)  # every account recorded
    errors = [error for status, error in accounts.values() if status == "error"]
    assert len(errors) == len(accounts)
    for error in errors:
        assert (
            "iam:GetAccountAuthorizationDetails" in error
            and "still throttled after 5 attempts" in error
        )
        assert "permission" not in error
    # 5 requests per call, no more: the scanner adds no retries of its own
    assert storm.requests["iam.GetAccountAuthorizationDetails"] == 5 * len(accounts)
    assert report.totals.status == "failed" or report.totals.accounts_errored == len(accounts)
