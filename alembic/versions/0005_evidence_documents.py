"""Evidence documents: each policy document of stored scenarios once, by content hash.

Existing evidence is converted to the form that refers to them (storage.evidence_store),
a batch of rows at a time; downgrade puts the documents back inline.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 06:20:00

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from storage.db import dumps_json
from storage.evidence_store import DocumentSet, expand_evidence, hashes_of, load_bodies

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BATCH = 500  # rows converted per statement pair

_INLINE = sa.text(
    """
    SELECT id, evidence FROM check_results
    WHERE id > :after AND jsonb_typeof(evidence -> 'scenario' -> 'policies') = 'object'
      AND NOT evidence ? 'documents'
    ORDER BY id LIMIT :batch
    """
)
_COMPACT = sa.text(
    """
    SELECT id, evidence FROM check_results
    WHERE id > :after AND evidence ? 'documents' ORDER BY id LIMIT :batch
    """
)
_INSERT_DOCUMENTS = sa.text(
    """
    INSERT INTO evidence_documents (hash, body)
    SELECT d.hash, d.body FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(hash text, body jsonb)
    ON CONFLICT (hash) DO NOTHING
    """
)
_SET_EVIDENCE = sa.text(
    """
    UPDATE check_results AS cr SET evidence = r.evidence
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id bigint, evidence jsonb)
    WHERE cr.id = r.id
    """
)


def upgrade() -> None:
    op.create_table(
        "evidence_documents",
        sa.Column("hash", sa.String(length=32), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_evidence_documents")),
    )
    conn = op.get_bind()
    after = 0
    while rows := conn.execute(_INLINE, {"after": after, "batch": BATCH}).all():
        documents = DocumentSet()
        compacted = [{"id": row.id, "evidence": documents.compact(row.evidence)} for row in rows]
        conn.execute(_INSERT_DOCUMENTS, {"rows": dumps_json(documents.rows())})
        conn.execute(_SET_EVIDENCE, {"rows": dumps_json(compacted)})
        after = rows[-1].id


def downgrade() -> None:
    conn = op.get_bind()
    after = 0
    while rows := conn.execute(_COMPACT, {"after": after, "batch": BATCH}).all():
        bodies = load_bodies(conn, (key for row in rows for key in hashes_of(row.evidence)))
        inline = [{"id": row.id, "evidence": expand_evidence(row.evidence, bodies)} for row in rows]
        conn.execute(_SET_EVIDENCE, {"rows": dumps_json(inline)})
        after = rows[-1].id
    op.drop_table("evidence_documents")
