"""Knowledge bases: documents, chunks, the embedding cache and the full-text index.

SQLite gets an external-content FTS5 table (porter stemming, BM25 ranking) kept in step with
``kb_chunks`` by triggers; PostgreSQL gets a generated ``tsvector`` column with a GIN index
(pgvector is not required: vectors are searched in memory, see :mod:`llmeco.rag.index`).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_kb"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_bases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("embed_model", sa.String(200), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "kb_documents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "kb_id", sa.Integer, sa.ForeignKey("kb_bases.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(1000), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("n_chunks", sa.Integer, nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kb_id", "name", name="uq_kb_documents_kb_name"),
    )
    op.create_table(
        "kb_chunks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "doc_id",
            sa.Integer,
            sa.ForeignKey("kb_documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kb_id", sa.Integer, nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("end", sa.Integer, nullable=False),
        sa.Column("section", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("embed_key", sa.String(64), nullable=False),
    )
    op.create_index("ix_kb_chunks_doc_ordinal", "kb_chunks", ["doc_id", "ordinal"], unique=True)
    op.create_index("ix_kb_chunks_kb", "kb_chunks", ["kb_id"])
    op.create_table(
        "kb_embeddings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE kb_chunks_fts USING fts5(section, text, content='kb_chunks', "
            "content_rowid='id', tokenize='porter unicode61')"
        )
        op.execute(
            "CREATE TRIGGER kb_chunks_fts_ai AFTER INSERT ON kb_chunks BEGIN "
            "INSERT INTO kb_chunks_fts(rowid, section, text) "
            "VALUES (new.id, new.section, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER kb_chunks_fts_ad AFTER DELETE ON kb_chunks BEGIN "
            "INSERT INTO kb_chunks_fts(kb_chunks_fts, rowid, section, text) "
            "VALUES ('delete', old.id, old.section, old.text); END"
        )
        op.execute(
            "CREATE TRIGGER kb_chunks_fts_au AFTER UPDATE ON kb_chunks BEGIN "
            "INSERT INTO kb_chunks_fts(kb_chunks_fts, rowid, section, text) "
            "VALUES ('delete', old.id, old.section, old.text); "
            "INSERT INTO kb_chunks_fts(rowid, section, text) "
            "VALUES (new.id, new.section, new.text); END"
        )
    elif dialect == "postgresql":
        op.execute(
            "ALTER TABLE kb_chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
            "(to_tsvector('english', section || ' ' || text)) STORED"
        )
        op.execute("CREATE INDEX ix_kb_chunks_tsv ON kb_chunks USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS kb_chunks_fts")
    op.drop_table("kb_embeddings")
    op.drop_table("kb_chunks")
    op.drop_table("kb_documents")
    op.drop_table("kb_bases")
