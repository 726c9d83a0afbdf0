"""Audit ledger: append-only entries, the chain head, signed checkpoints."""

import sqlalchemy as sa
from alembic import op

revision = "0003_audit"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String, nullable=True),
        sa.Column("key_id", sa.String, nullable=True),
        sa.Column("route", sa.String, nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.Column("request_body", sa.LargeBinary, nullable=True),
        sa.Column("response_body", sa.LargeBinary, nullable=True),
    )
    op.create_index("ix_audit_entries_request_id", "audit_entries", ["request_id"])
    op.create_index("ix_audit_entries_key_id_ts", "audit_entries", ["key_id", "ts"])
    op.create_index("ix_audit_entries_ts", "audit_entries", ["ts"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger, nullable=False),
        sa.Column("checkpoint_time", sa.Float, nullable=False),
        sa.Column("writes", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "seq": 0,
                "entry_hash": "0" * 64,
                "frontier": "[]",
                "checkpoint_size": 0,
                "checkpoint_time": 0.0,
                "writes": 0,
            }
        ],
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_index("ix_audit_checkpoints_size", "audit_checkpoints", ["size"])


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_head")
    op.drop_table("audit_entries")
