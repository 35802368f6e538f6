"""Shared scans: the accounts of one scan claimed by several replicas.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 04:10:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('scan_work',
    sa.Column('scan_run_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('claimed_by', sa.String(length=255), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claims', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['scan_run_id'], ['scan_runs.id'], name=op.f('fk_scan_work_scan_run_id_scan_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('scan_run_id', 'account_id', name=op.f('pk_scan_work'))
    )
    op.create_index('ix_scan_work_run_state', 'scan_work', ['scan_run_id', 'state'], unique=False)
    op.create_table('shared_scans',
    sa.Column('scan_run_id', sa.BigInteger(), nullable=False),
    sa.Column('organization', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['scan_run_id'], ['scan_runs.id'], name=op.f('fk_shared_scans_scan_run_id_scan_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('scan_run_id', name=op.f('pk_shared_scans'))
    )


def downgrade() -> None:
    op.drop_table('shared_scans')
    op.drop_index('ix_scan_work_run_state', table_name='scan_work')
    op.drop_table('scan_work')
