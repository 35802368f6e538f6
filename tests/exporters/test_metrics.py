"""The database collector against a real PostgreSQL holding known rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from metrics_seed import NOW, seed_small
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, create_engine

from exporters.metrics import DatabaseCollector, SchedulerMetrics, build_registry
from storage.migrate import upgrade


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def _registry(engine: Engine, **kwargs: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(engine, **kwargs))  # type: ignore[arg-type]
    return registry


def test_empty_database_exports_zeros_and_no_ratio(engine: Engine) -> None:
    registry = _registry(engine, interval_seconds=21600)
    assert registry.get_sample_value("vaultscan_database_up") == 1
    assert registry.get_sample_value("vaultscan_checks", {"status": "fail"}) == 0
    # no checks: a ratio of 0 or 1 would be a lie
    assert registry.get_sample_value("vaultscan_compliance_ratio") is None
    assert registry.get_sample_value("vaultscan_last_successful_scan_timestamp_seconds") is None
    assert registry.get_sample_value("vaultscan_scan_interval_seconds") == 21600
    # every drift kind starts at 0 so increase() sees the first event
    assert registry.get_sample_value("vaultscan_drift_events_total", {"kind": "regressed"}) == 0


def test_aggregates_from_seeded_rows(engine: Engine) -> None:
    seed_small(engine)
    r = _registry(engine)
    assert r.get_sample_value("vaultscan_checks", {"status": "pass"}) == 4
    assert r.get_sample_value("vaultscan_checks", {"status": "fail"}) == 2
    assert r.get_sample_value("vaultscan_compliance_ratio") == pytest.approx(4 / 6)
    assert (
        r.get_sample_value(
            "vaultscan_checks_by_ou",
            {"ou_id": "ou-ab12-11111111", "ou": "Root/Prod", "status": "fail"},
        )
        == 2
    )
    assert r.get_sample_value("vaultscan_failing_checks_by_layer", {"layer": "scp"}) == 2
    assert (
        r.get_sample_value("vaultscan_checks_by_action", {"check": "kms:Decrypt", "status": "fail"})
        == 1
    )
    assert r.get_sample_value("vaultscan_simulator_disagreements") == 1
    assert r.get_sample_value("vaultscan_drift_events_total", {"kind": "regressed"}) == 2
    assert r.get_sample_value("vaultscan_drift_events_total", {"kind": "new"}) == 1
    assert r.get_sample_value("vaultscan_drift_events_total", {"kind": "fixed"}) == 0


def test_failing_role_is_one_series_with_age(engine: Engine) -> None:
    seed_small(engine)
    text = generate_latest(_registry(engine)).decode()
    series = [
        line
        for line in text.splitlines()
        if line.startswith("vaultscan_role_failing_since_timestamp_seconds{")
    ]
    assert len(series) == 1, series  # two failing checks, one role
    labels = {
        "account_id": "222222222222",
        "account_name": "prod-b",
        "ou": "Root/Prod",
        "region": "eu-west-1",
        "role": "BackupRole",
        "layer": "scp",
    }
    r = _registry(engine)
    since = r.get_sample_value("vaultscan_role_failing_since_timestamp_seconds", labels)
    assert since == (NOW.timestamp() - 7 * 3600)
    assert r.get_sample_value("vaultscan_role_failing_checks", labels) == 2
    assert r.get_sample_value("vaultscan_failing_roles") == 1


def test_last_scan_and_unreachable_accounts(engine: Engine) -> None:
    seed_small(engine)
    r = _registry(engine)
    finished = NOW.timestamp() - 3600 + 180
    assert r.get_sample_value("vaultscan_last_successful_scan_timestamp_seconds") == finished
    assert r.get_sample_value("vaultscan_last_scan_duration_seconds") == 180
    assert r.get_sample_value("vaultscan_last_scan_status", {"status": "partial"}) == 1
    assert r.get_sample_value("vaultscan_last_scan_status", {"status": "succeeded"}) == 0
    assert r.get_sample_value("vaultscan_last_scan_accounts", {"state": "errored"}) == 1
    assert (
        r.get_sample_value(
            "vaultscan_account_unreachable",
            {"account_id": "333333333333", "account_name": "dev-a", "ou": "Root/Dev"},
        )
        == 1
    )
    assert r.get_sample_value("vaultscan_scans_total", {"status": "partial"}) == 1
    assert r.get_sample_value("vaultscan_scan_running") == 0


def test_detail_series_are_capped_but_total_is_not(engine: Engine) -> None:
    seed_small(engine)
    text = generate_latest(_registry(engine, max_detail_series=0)).decode()
    assert "vaultscan_role_failing_since_timestamp_seconds{" not in text
    assert "vaultscan_failing_roles 1.0" in text


def test_unreachable_database_still_answers() -> None:
    # nothing listens on port 1: connecting fails fast
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    r = _registry(engine, interval_seconds=60)
    assert r.get_sample_value("vaultscan_database_up") == 0
    assert r.get_sample_value("vaultscan_checks", {"status": "pass"}) is None
    assert r.get_sample_value("vaultscan_scan_interval_seconds") == 60


def test_scheduler_counters_start_at_zero() -> None:
    registry = build_registry(None)
    metrics = SchedulerMetrics(registry)
    labels = {"outcome": "skipped_lock_held"}
    assert registry.get_sample_value("vaultscan_scheduler_scans_total", labels) == 0
    metrics.record("skipped_lock_held")
    assert registry.get_sample_value("vaultscan_scheduler_scans_total", labels) == 1


@pytest.mark.parametrize("check", ["kms:KeyState", "kms:KeyState (alias/vault-key)"])
def test_unusable_key_is_its_own_layer_for_all_roles(engine: Engine, check: str) -> None:
    """The configured key's state check, and a vault key's (named after the key)."""
    from sqlalchemy.orm import Session

    from storage.models import CheckState

    run = seed_small(engine)["last"]
    with Session(engine) as session, session.begin():
        session.add(
            CheckState(
                check_key=f"111111111111|us-east-1||{check}",
                account_id="111111111111",
                region="us-east-1",
                role_arn="",
                check=check,
                status="fail",
                last_scan_run_id=run,
                failing_since=NOW,
            )
        )
    r = _registry(engine)
    labels = {
        "account_id": "111111111111",
        "account_name": "prod-a",
        "ou": "Root/Prod",
        "region": "us-east-1",
        "role": "(all roles)",
        "layer": "key_state",
    }
    assert r.get_sample_value("vaultscan_role_failing_checks", labels) == 1
    assert r.get_sample_value("vaultscan_failing_checks_by_layer", {"layer": "key_state"}) == 1


def test_same_collector_sees_the_next_finished_run(engine: Engine) -> None:
    # aggregates are reused between scrapes only until a run finishes
    from datetime import timedelta

    from metrics_seed import add_run
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from storage.models import CheckState

    seed_small(engine)
    r = _registry(engine)
    assert r.get_sample_value("vaultscan_checks", {"status": "fail"}) == 2
    assert r.get_sample_value("vaultscan_checks", {"status": "fail"}) == 2
    with Session(engine) as session, session.begin():
        run = add_run(session, "succeeded", NOW, 1)
        session.execute(
            update(CheckState)
            .where(CheckState.account_id == "111111111111", CheckState.status != "gone")
            .values(
                status="fail",
                deciding_layer="rcp",
                last_scan_run_id=run,
                failing_since=NOW + timedelta(minutes=1),
            )
        )
    assert r.get_sample_value("vaultscan_checks", {"status": "fail"}) == 5
    assert r.get_sample_value("vaultscan_failing_checks_by_layer", {"layer": "rcp"}) == 3
    assert r.get_sample_value("vaultscan_failing_roles") == 2


def test_ou_checks_cover_the_whole_subtree_and_accounts_carry_their_region(
    engine: Engine,
) -> None:
    from sqlalchemy.orm import Session

    from storage.models import Account, CheckState

    seed_small(engine)  # Root/Prod: prod-a (3 pass), prod-b (1 pass, 2 fail); Root/Dev
    with Session(engine) as session, session.begin():
        # a deeper account under Prod, failing: Prod itself must not look compliant
        session.add(
            Account(
                account_id="444444444444",
                name="payments-a",
                ou_path="r-ab12/ou-ab12-11111111/ou-ab12-33333333",
                ou_path_names="Root/Prod/Payments",
            )
        )
        session.flush()
        session.add(
            CheckState(
                check_key="444444444444|us-east-1|r|kms:Decrypt",
                account_id="444444444444",
                region="us-east-1",
                role_arn="arn:aws:iam::444444444444:role/BackupRole",
                check="kms:Decrypt",
                status="fail",
                last_scan_run_id=1,
            )
        )
    registry = _registry(engine)

    def ou(names: str, status: str) -> float | None:
        return next(
            (
                sample.value
                for family in registry.collect()
                if family.name == "vaultscan_ou_checks"
                for sample in family.samples
                if sample.labels["ou"] == names and sample.labels["status"] == status
            ),
            None,
        )

    assert ou("Root/Prod/Payments", "fail") == 1
    assert ou("Root/Prod", "fail") == 2 + 1  # prod-b's two and the child OU's one
    assert ou("Root/Prod", "pass") == 4
    assert ou("Root", "fail") == 3
    labels = {
        "account_id": "444444444444",
        "account_name": "payments-a",
        "ou": "Root/Prod/Payments",
        "region": "us-east-1",
    }
    assert registry.get_sample_value("vaultscan_account_checks", {**labels, "status": "fail"}) == 1
    assert registry.get_sample_value("vaultscan_account_checks", {**labels, "status": "pass"}) == 0
    assert registry.get_sample_value("vaultscan_account_regions") == 3
    capped = _registry(engine, max_detail_series=1)
    series = [
        s for f in capped.collect() if f.name == "vaultscan_account_checks" for s in f.samples
    ]
    assert len(series) == 3 and {s.labels["account_id"] for s in series} == {"222222222222"}
