"""Typed SQLAlchemy 2 models. Alembic migrations under alembic/ must stay equal to these
(a test compares them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints, so later migrations can refer to them by a name known in advance.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # none_as_null: a missing remediation is SQL NULL, not the JSON value null
    type_annotation_map = {
        dict[str, Any]: JSONB(none_as_null=True),
        datetime: DateTime(timezone=True),
    }


class ScanRun(Base):
    """One scan of the organization."""

    __tablename__ = "scan_runs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
    # running, succeeded (every account read), partial (some accounts errored),
    # failed (the scan itself broke), interrupted (stopped or abandoned)
    status: Mapped[str] = mapped_column(String(16), default="running")
    trigger: Mapped[str] = mapped_column(String(16), default="cli")  # cli, schedule, demo
    host: Mapped[str] = mapped_column(String(255), default="")  # who ran it (host:pid)
    config_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    simulator_source: Mapped[str] = mapped_column(String(32), default="aws")
    accounts_total: Mapped[int] = mapped_column(Integer, default=0)  # in the organization
    accounts_scanned: Mapped[int] = mapped_column(Integer, default=0)  # read successfully
    accounts_errored: Mapped[int] = mapped_column(Integer, default=0)  # could not be read
    checks_total: Mapped[int] = mapped_column(Integer, default=0)
    checks_passed: Mapped[int] = mapped_column(Integer, default=0)
    checks_failed: Mapped[int] = mapped_column(Integer, default=0)
    checks_errored: Mapped[int] = mapped_column(Integer, default=0)
    disagreements: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # accounts read with every check passing; stored at finish so a report can still
    # say it after retention removed the run's results (NULL: runs from before 0002)
    accounts_compliant: Mapped[int | None] = mapped_column(Integer)
    # when retention removed this run's per-check results and account reads
    pruned_at: Mapped[datetime | None]


class Account(Base):
    """Latest known facts about a member account."""

    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(32), default="ACTIVE")
    ou_path: Mapped[str] = mapped_column(Text, default="")  # r-xx/ou-xx-yy (ids)
    ou_path_names: Mapped[str] = mapped_column(Text, default="")  # Root/Prod (names)
    # the tags vaultscan reads (report.owner_tag), {"team": "payments"}
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    first_seen_scan_id: Mapped[int | None] = mapped_column(ForeignKey("scan_runs.id"))
    last_seen_scan_id: Mapped[int | None] = mapped_column(ForeignKey("scan_runs.id"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class AccountScan(Base):
    """Whether one account could be read in one scan, and why not."""

    __tablename__ = "account_scans"
    __table_args__ = (
        UniqueConstraint("scan_run_id", "account_id"),
        # an account's latest read: what an incremental scan compares against
        Index("ix_account_scans_account_run", "account_id", "scan_run_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    scan_run_id: Mapped[int] = mapped_column(ForeignKey("scan_runs.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(16))  # ok, error
    error: Mapped[str | None] = mapped_column(Text)
    api_calls: Mapped[dict[str, Any]] = mapped_column(default=dict)  # "iam:ListRoles" -> n
    # sha256 of the evidence the verdicts follow from (NULL: time-dependent, or not a
    # scheduled or CLI scan); an incremental scan skips an account whose evidence is equal
    evidence_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # the evidence was unchanged: the verdicts were carried over from this run
    carried_from_run_id: Mapped[int | None] = mapped_column(BigInteger)
    # when carried verdicts were decided, however many runs carried them (NULL: decided
    # in this run): what incremental.max_age_hours is measured against
    verdicts_decided_at: Mapped[datetime | None]


class CheckResult(Base):
    """One verdict of one scan; the evidence keeps the replayable scenario."""

    __tablename__ = "check_results"
    __table_args__ = (
        UniqueConstraint("scan_run_id", "check_key"),
        Index("ix_check_results_key_run", "check_key", "scan_run_id"),
        # an account's results in one run: re-recording it, and per-account history
        Index("ix_check_results_account_run", "account_id", "scan_run_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    scan_run_id: Mapped[int] = mapped_column(ForeignKey("scan_runs.id", ondelete="CASCADE"))
    check_key: Mapped[str] = mapped_column(Text)  # account|region|role arn|check
    account_id: Mapped[str] = mapped_column(String(12))
    region: Mapped[str] = mapped_column(String(32))
    role_arn: Mapped[str] = mapped_column(Text)
    check: Mapped[str] = mapped_column(String(128))
    resource: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(8))  # pass, fail, error
    decision: Mapped[str | None] = mapped_column(String(16))
    deciding_layer: Mapped[str | None] = mapped_column(String(32))
    policy: Mapped[str | None] = mapped_column(Text)
    statement: Mapped[str | None] = mapped_column(Text)
    simulator_decision: Mapped[str | None] = mapped_column(String(16))
    simulator_source: Mapped[str | None] = mapped_column(String(32))
    disagreement: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str] = mapped_column(Text, default="")
    remediation: Mapped[dict[str, Any] | None]
    # {"scenario": ..., "explanation": ..., "documents": [hash, ...]}: the scenario's
    # policy documents are in evidence_documents (see storage.evidence_store)
    evidence: Mapped[dict[str, Any] | None]
    failing_since: Mapped[datetime | None]


class EvidenceDocument(Base):
    """A policy document of stored scenarios, once per content (most are shared by every
    check of a role, many by every account: SCPs, RCPs, AWS managed policies)."""

    __tablename__ = "evidence_documents"

    hash: Mapped[str] = mapped_column(String(32), primary_key=True)  # see document_hash
    body: Mapped[dict[str, Any]]


class CheckState(Base):
    """The latest status of every check key: what drift compares against and what the
    metrics read, so any replica can serve them and a restart loses nothing."""

    __tablename__ = "check_state"

    check_key: Mapped[str] = mapped_column(Text, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(12), index=True)
    region: Mapped[str] = mapped_column(String(32))
    role_arn: Mapped[str] = mapped_column(Text)
    check: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(8), index=True)  # pass, fail, error, gone
    deciding_layer: Mapped[str | None] = mapped_column(String(32))
    policy: Mapped[str | None] = mapped_column(Text)
    statement: Mapped[str | None] = mapped_column(Text)
    disagreement: Mapped[bool] = mapped_column(Boolean, default=False)
    # indexed: deleting check_results rows (a re-recorded account, pruning) looks it up
    last_result_id: Mapped[int | None] = mapped_column(
        ForeignKey("check_results.id", ondelete="SET NULL"), index=True
    )
    last_scan_run_id: Mapped[int] = mapped_column(ForeignKey("scan_runs.id"))
    failing_since: Mapped[datetime | None]
    last_changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DriftEvent(Base):
    """A check whose status changed between two scans."""

    __tablename__ = "drift_events"
    __table_args__ = (
        Index("ix_drift_events_at", "occurred_at"),
        Index("ix_drift_events_run", "scan_run_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    scan_run_id: Mapped[int] = mapped_column(ForeignKey("scan_runs.id", ondelete="CASCADE"))
    check_key: Mapped[str] = mapped_column(Text)
    account_id: Mapped[str] = mapped_column(String(12), index=True)
    region: Mapped[str] = mapped_column(String(32))
    role_arn: Mapped[str] = mapped_column(Text)
    check: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # regressed, fixed, new, gone, error
    previous_status: Mapped[str | None] = mapped_column(String(8))
    current_status: Mapped[str | None] = mapped_column(String(8))
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DriftTotal(Base):
    """Drift events ever recorded, by kind. Kept as a running total (added to when a run
    finishes) so the exported counters never go down when retention deletes old events."""

    __tablename__ = "drift_totals"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0)


class ScanWork(Base):
    """One account of a scan shared by several replicas: who holds it, until when.

    A replica claims pending accounts (or ones whose lease ran out: their replica died)
    with SELECT ... FOR UPDATE SKIP LOCKED, renews its leases while it scans them, and
    marks an account done in the transaction that records its verdicts."""

    __tablename__ = "scan_work"
    __table_args__ = (Index("ix_scan_work_run_state", "scan_run_id", "state"),)

    scan_run_id: Mapped[int] = mapped_column(
        ForeignKey("scan_runs.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    state: Mapped[str] = mapped_column(String(8), default="pending")  # pending, claimed, done
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[datetime | None]
    claims: Mapped[int] = mapped_column(Integer, default=0)  # > 1: taken over after a lease ran out


class SharedScan(Base):
    """What replicas joining a shared scan need that only the starting replica knows: the
    organization tree with its SCPs and RCPs (JSON), and whether the scan is incremental."""

    __tablename__ = "shared_scans"

    scan_run_id: Mapped[int] = mapped_column(
        ForeignKey("scan_runs.id", ondelete="CASCADE"), primary_key=True
    )
    organization: Mapped[dict[str, Any]]
    # an incremental scan: verdicts decided at or after this may be carried over (NULL: a
    # full scan, every account decided afresh)
    incremental_since: Mapped[datetime | None]
