"""Account tags: the owner tag the report groups by (report.owner_tag).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 04:20:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column(
        'accounts',
        sa.Column('tags', postgresql.JSONB(astext_type=sa.Text()), server_default='{}',
                  nullable=False),
    )


def downgrade() -> None:
    op.drop_column('accounts', 'tags')
