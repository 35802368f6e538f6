"""The AWS endpoint lost in the middle of `vaultscan scan` and back a little later: the
accounts it cut off are recorded as errors naming the connection failure, the others as
usual, the run is `partial`; the next scan is complete."""

from __future__ import annotations

import time

from fault_harness import (
    POLL,
    TcpProxy,
    assert_nothing_duplicated,
    start_scan,
    stored,
    write_config,
)
from processes import aws_environment, wait_until

# Longer than botocore's standard retries (5 attempts, backoff up to 1+2+4+8 s), so the
# call in flight gives up; short enough that later accounts find the endpoint back.
OUTAGE_SECONDS = 25


def test_endpoint_lost_mid_scan_marks_every_affected_account(seeded_moto, scratch_url, tmp_path):
    proxy = TcpProxy(seeded_moto.moto.port).up()
    config = write_config(
        tmp_path / "vaultscan.yaml", seeded_moto.settings(concurrency=1), scratch_url
    )
    env = aws_environment(proxy.endpoint)
    process = start_scan(config, env, tmp_path / "scan.log")
    try:
        wait_until(
            lambda: len(stored(scratch_url).accounts) >= 2,
            timeout=180,
            what="accounts recorded",
            every=POLL,
        )
        proxy.down()
        time.sleep(OUTAGE_SECONDS)
        proxy.up()
        code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
        proxy.down()
    log = (tmp_path / "scan.log").read_text()
    assert code == 0, log
    state = stored(scratch_url)
    [(run_id, status, _)] = state.runs
    accounts = state.accounts_of(run_id)
    total = len(seeded_moto.sandbox.accounts)
    assert len(accounts) == total  # every account recorded, none twice
    assert_nothing_duplicated(state)
    errors = {a: e for a, (s, e) in accounts.items() if s == "error"}
    assert status == "partial" and errors
    for error in errors.values():
        assert "connect" in error.lower() or "endpoint" in error.lower(), error
    ok = {a for a, (s, _) in accounts.items() if s == "ok"}
    assert len(ok) >= 2  # before the outage and after it came back
    assert ok == {a for a, _ in state.results_of(run_id)}

    rescan = start_scan(config, aws_environment(seeded_moto.moto.endpoint), tmp_path / "re.log")
    assert rescan.wait(timeout=300) == 0
    run_id, status, _ = stored(scratch_url).runs[-1]
    assert status == "succeeded"
    assert len(stored(scratch_url).accounts_of(run_id)) == total
