"""Audit ledger archives: where the archived prefix of the chain ends."""

import sqlalchemy as sa
from alembic import op

revision = "0009_audit_archive"
down_revision = "0003_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_archives",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False, unique=True),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String, nullable=False),
        sa.Column("record_seq", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_archives")
