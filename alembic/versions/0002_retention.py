"""Retention: running drift totals, accounts compliant per run, when a run was pruned.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 03:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('drift_totals',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('events', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('kind', name=op.f('pk_drift_totals'))
    )
    # the totals start from the events recorded so far
    op.execute(
        "INSERT INTO drift_totals (kind, events) "
        "SELECT kind, count(*) FROM drift_events GROUP BY kind"
    )
    op.add_column('scan_runs', sa.Column('accounts_compliant', sa.Integer(), nullable=True))
    op.add_column('scan_runs', sa.Column('pruned_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('scan_runs', 'pruned_at')
    op.drop_column('scan_runs', 'accounts_compliant')
    op.drop_table('drift_totals')
