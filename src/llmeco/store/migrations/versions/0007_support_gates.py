"""Support assistant: one calibrated answerability gate (JSON) per knowledge base."""

import sqlalchemy as sa
from alembic import op

revision = "0007_support_gates"
down_revision = "0006_support"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_gates",
        sa.Column("kb", sa.String(200), primary_key=True),
        sa.Column("gate", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("support_gates")
