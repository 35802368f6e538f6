"""`kill -9` and SIGTERM in the middle of `vaultscan scan`, then a new scan: the finished
accounts stay recorded, the run is closed as interrupted (SIGTERM at once; kill -9 by
the next scan, under the scan lock), and the next scan is complete."""

from __future__ import annotations

import signal

from fault_harness import POLL, assert_nothing_duplicated, start_scan, stored, write_config
from processes import aws_environment, wait_until

# Slow enough that a signal lands mid-scan: one account at a time.
ONE_AT_A_TIME = {"concurrency": 1}


def _some_accounts_recorded(url: str) -> bool:
    state = stored(url)
    return bool(state.runs) and len(state.accounts) >= 2


def _scan_to_the_middle(seeded_moto, scratch_url, tmp_path, name: str):
    config = write_config(
        tmp_path / "vaultscan.yaml", seeded_moto.settings(**ONE_AT_A_TIME), scratch_url
    )
    env = aws_environment(seeded_moto.moto.endpoint)
    process = start_scan(config, env, tmp_path / f"{name}.log")
    wait_until(
        lambda: _some_accounts_recorded(scratch_url),
        timeout=120,
        what="a mid-scan state",
        every=POLL,
    )
    return config, env, process


def _complete_rescan(config, env, tmp_path, scratch_url, total: int) -> int:
    process = start_scan(config, env, tmp_path / "rescan.log")
    assert process.wait(timeout=300) == 0, (tmp_path / "rescan.log").read_text()
    state = stored(scratch_url)
    run_id, status, _ = state.runs[-1]
    assert status == "succeeded"
    assert len(state.accounts_of(run_id)) == total
    return run_id


def test_sigterm_mid_scan_records_the_run_as_interrupted(seeded_moto, scratch_url, tmp_path):
    config, env, process = _scan_to_the_middle(seeded_moto, scratch_url, tmp_path, "term")
    code = process.send_signal(signal.SIGTERM) or process.wait(timeout=120)
    log = (tmp_path / "term.log").read_text()
    assert code == 130, log  # handled like Ctrl-C, not killed (143)
    state = stored(scratch_url)
    [(run_id, status, error)] = state.runs
    assert status == "interrupted", log
    assert "SIGTERM" in (error or "")
    finished = state.accounts_of(run_id)
    assert 2 <= len(finished) < len(seeded_moto.sandbox.accounts)
    # every recorded account has its results; nothing twice
    ok_accounts = {a for a, (s, _) in finished.items() if s == "ok"}
    assert ok_accounts == {a for a, _ in state.results_of(run_id)}
    assert_nothing_duplicated(state)
    _complete_rescan(config, env, tmp_path, scratch_url, len(seeded_moto.sandbox.accounts))


def test_kill_9_mid_scan_is_closed_by_the_next_scan(seeded_moto, scratch_url, tmp_path):
    config, env, process = _scan_to_the_middle(seeded_moto, scratch_url, tmp_path, "kill")
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    [(abandoned, status, _)] = stored(scratch_url).runs
    assert status == "running"  # nobody could close it
    before = stored(scratch_url).accounts_of(abandoned)
    assert before

    rescan = _complete_rescan(config, env, tmp_path, scratch_url, len(seeded_moto.sandbox.accounts))
    state = stored(scratch_url)
    _, status, error = state.run(abandoned)
    assert status == "interrupted"
    assert "abandoned" in (error or "")
    assert state.accounts_of(abandoned) == before  # what it recorded is kept
    assert rescan != abandoned
    assert [s for _, s, _ in state.runs].count("running") == 0
    assert_nothing_duplicated(state)
