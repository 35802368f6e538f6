"""Incremental shared scans: the cutoff the starting replica chose, so that every replica
carries exactly the verdicts a single process would.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 09:10:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('shared_scans', sa.Column('incremental_since', sa.DateTime(timezone=True),
                                            nullable=True))


def downgrade() -> None:
    op.drop_column('shared_scans', 'incremental_since')
