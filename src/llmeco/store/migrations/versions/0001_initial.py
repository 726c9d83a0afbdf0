"""Initial schema: the store's own metadata table.

Each feature adds its tables in its own migration whose ``down_revision`` is ``"0001"``
(or a later revision of the same feature); ``Store.migrate`` upgrades every head.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("store_meta")
