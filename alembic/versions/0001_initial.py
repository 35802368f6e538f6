"""Initial schema: scan runs, accounts, per-run results, latest state per check, drift.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28 01:25:41.443438

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('scan_runs',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('config_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('simulator_source', sa.String(length=32), nullable=False),
    sa.Column('accounts_total', sa.Integer(), nullable=False),
    sa.Column('accounts_scanned', sa.Integer(), nullable=False),
    sa.Column('accounts_errored', sa.Integer(), nullable=False),
    sa.Column('checks_total', sa.Integer(), nullable=False),
    sa.Column('checks_passed', sa.Integer(), nullable=False),
    sa.Column('checks_failed', sa.Integer(), nullable=False),
    sa.Column('checks_errored', sa.Integer(), nullable=False),
    sa.Column('disagreements', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scan_runs'))
    )
    op.create_table('account_scans',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('scan_run_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('api_calls', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['scan_run_id'], ['scan_runs.id'], name=op.f('fk_account_scans_scan_run_id_scan_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_scans')),
    sa.UniqueConstraint('scan_run_id', 'account_id', name=op.f('uq_account_scans_scan_run_id_account_id'))
    )
    op.create_table('accounts',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('ou_path', sa.Text(), nullable=False),
    sa.Column('ou_path_names', sa.Text(), nullable=False),
    sa.Column('first_seen_scan_id', sa.BigInteger(), nullable=True),
    sa.Column('last_seen_scan_id', sa.BigInteger(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['first_seen_scan_id'], ['scan_runs.id'], name=op.f('fk_accounts_first_seen_scan_id_scan_runs')),
    sa.ForeignKeyConstraint(['last_seen_scan_id'], ['scan_runs.id'], name=op.f('fk_accounts_last_seen_scan_id_scan_runs')),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_accounts'))
    )
    op.create_table('check_results',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('scan_run_id', sa.BigInteger(), nullable=False),
    sa.Column('check_key', sa.Text(), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('role_arn', sa.Text(), nullable=False),
    sa.Column('check', sa.String(length=128), nullable=False),
    sa.Column('resource', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('deciding_layer', sa.String(length=32), nullable=True),
    sa.Column('policy', sa.Text(), nullable=True),
    sa.Column('statement', sa.Text(), nullable=True),
    sa.Column('simulator_decision', sa.String(length=16), nullable=True),
    sa.Column('simulator_source', sa.String(length=32), nullable=True),
    sa.Column('disagreement', sa.Boolean(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('remediation', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('evidence', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['scan_run_id'], ['scan_runs.id'], name=op.f('fk_check_results_scan_run_id_scan_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_check_results')),
    sa.UniqueConstraint('scan_run_id', 'check_key', name=op.f('uq_check_results_scan_run_id_check_key'))
    )
    op.create_index('ix_check_results_key_run', 'check_results', ['check_key', 'scan_run_id'], unique=False)
    op.create_index('ix_check_results_account_run', 'check_results', ['account_id', 'scan_run_id'], unique=False)
    op.create_table('drift_events',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('scan_run_id', sa.BigInteger(), nullable=False),
    sa.Column('check_key', sa.Text(), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('role_arn', sa.Text(), nullable=False),
    sa.Column('check', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('previous_status', sa.String(length=8), nullable=True),
    sa.Column('current_status', sa.String(length=8), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['scan_run_id'], ['scan_runs.id'], name=op.f('fk_drift_events_scan_run_id_scan_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drift_events'))
    )
    op.create_index(op.f('ix_drift_events_account_id'), 'drift_events', ['account_id'], unique=False)
    op.create_index('ix_drift_events_at', 'drift_events', ['occurred_at'], unique=False)
    op.create_index('ix_drift_events_run', 'drift_events', ['scan_run_id'], unique=False)
    op.create_table('check_state',
    sa.Column('check_key', sa.Text(), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=32), nullable=False),
    sa.Column('role_arn', sa.Text(), nullable=False),
    sa.Column('check', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('deciding_layer', sa.String(length=32), nullable=True),
    sa.Column('policy', sa.Text(), nullable=True),
    sa.Column('statement', sa.Text(), nullable=True),
    sa.Column('disagreement', sa.Boolean(), nullable=False),
    sa.Column('last_result_id', sa.BigInteger(), nullable=True),
    sa.Column('last_scan_run_id', sa.BigInteger(), nullable=False),
    sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['last_result_id'], ['check_results.id'], name=op.f('fk_check_state_last_result_id_check_results'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['last_scan_run_id'], ['scan_runs.id'], name=op.f('fk_check_state_last_scan_run_id_scan_runs')),
    sa.PrimaryKeyConstraint('check_key', name=op.f('pk_check_state'))
    )
    op.create_index(op.f('ix_check_state_account_id'), 'check_state', ['account_id'], unique=False)
    op.create_index(op.f('ix_check_state_last_result_id'), 'check_state', ['last_result_id'], unique=False)
    op.create_index(op.f('ix_check_state_status'), 'check_state', ['status'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_check_state_status'), table_name='check_state')
    op.drop_index(op.f('ix_check_state_last_result_id'), table_name='check_state')
    op.drop_index(op.f('ix_check_state_account_id'), table_name='check_state')
    op.drop_table('check_state')
    op.drop_index('ix_drift_events_run', table_name='drift_events')
    op.drop_index('ix_drift_events_at', table_name='drift_events')
    op.drop_index(op.f('ix_drift_events_account_id'), table_name='drift_events')
    op.drop_table('drift_events')
    op.drop_index('ix_check_results_account_run', table_name='check_results')
    op.drop_index('ix_check_results_key_run', table_name='check_results')
    op.drop_table('check_results')
    op.drop_table('accounts')
    op.drop_table('account_scans')
    op.drop_table('scan_runs')
