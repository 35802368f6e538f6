"""Incremental scans: each account read's evidence fingerprint, and for an unchanged
account the run whose verdicts it carried over and when they were decided.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 06:20:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('account_scans', sa.Column('evidence_fingerprint', sa.String(length=64),
                                             nullable=True))
    op.add_column('account_scans', sa.Column('carried_from_run_id', sa.BigInteger(),
                                             nullable=True))
    op.add_column('account_scans', sa.Column('verdicts_decided_at', sa.DateTime(timezone=True),
                                             nullable=True))
    op.create_index('ix_account_scans_account_run', 'account_scans',
                    ['account_id', 'scan_run_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_account_scans_account_run', table_name='account_scans')
    op.drop_column('account_scans', 'verdicts_decided_at')
    op.drop_column('account_scans', 'carried_from_run_id')
    op.drop_column('account_scans', 'evidence_fingerprint')
