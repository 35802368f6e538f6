"""An endpoint that dies while answering can leave an empty or truncated body, which
botocore reports as a parser error rather than a connection error: the account is
recorded as an AWS endpoint failure, not as an internal defect, and the scan goes on."""

from __future__ import annotations

from botocore.parsers import ResponseParserError

import scanner.aws.collect as collect_module
from scanner import account_scan, runner
from scanner.sandbox import sandbox_settings


def test_an_answer_cut_short_is_an_endpoint_failure(seeded, db_engine, monkeypatch) -> None:
    settings = sandbox_settings(seeded.sandbox, concurrency=2)
    victim = seeded.sandbox.accounts[0].account_id
    real_collect = collect_module.collect_account

    def cut_for_victim(sessions, settings, profiles, account, organization, simulator, **kw):
        if account.id == victim:
            # what botocore raises for a 200 answer whose XML body is empty
            raise ResponseParserError("Unable to parse response (no element found), invalid XML")
        return real_collect(sessions, settings, profiles, account, organization, simulator, **kw)

    monkeypatch.setattr(account_scan, "collect_account", cut_for_victim)
    report = runner.run_scan(settings, engine=db_engine, sessions=seeded.sessions(settings))

    outcome = next(o for o in report.summary.outcomes if o.account.id == victim)
    assert outcome.status == "error"
    assert outcome.error.startswith("AWS endpoint failure: ResponseParserError"), outcome.error
    assert "internal error" not in outcome.error
    assert report.totals.accounts_scanned == len(seeded.sandbox.accounts) - 1
