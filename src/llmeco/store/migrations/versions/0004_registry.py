"""Model registry: models, immutable versions and their files, aliases, alias history, evals.

See :mod:`llmeco.registry.tables` for what each table holds.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_registry"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "registry_models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("alias_epoch", sa.BigInteger, nullable=False),
        sa.Column("alias_changed_at", ts),
    )
    op.create_table(
        "registry_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "model_id",
            sa.Integer,
            sa.ForeignKey("registry_models.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("lineage", sa.Text),
        sa.Column("config", sa.Text),
        sa.Column("total_bytes", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_registry_versions"),
    )
    op.create_table(
        "registry_files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("registry_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("version_id", "path", name="uq_registry_files"),
    )
    op.create_index("ix_registry_files_sha256", "registry_files", ["sha256"])
    op.create_table(
        "registry_aliases",
        sa.Column(
            "model_id",
            sa.Integer,
            sa.ForeignKey("registry_models.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("alias", sa.String(128), primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("registry_versions.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "registry_alias_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "model_id",
            sa.Integer,
            sa.ForeignKey("registry_models.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", ts, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_registry_alias_events_model", "registry_alias_events", ["model_id", "alias", "id"]
    )
    op.create_table(
        "registry_evals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("registry_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("suite_sha256", sa.String(64), nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", ts, nullable=False),
    )
    op.create_index(
        "ix_registry_evals_version_suite", "registry_evals", ["version_id", "suite", "id"]
    )


def downgrade() -> None:
    op.drop_table("registry_evals")
    op.drop_table("registry_alias_events")
    op.drop_table("registry_aliases")
    op.drop_table("registry_files")
    op.drop_table("registry_versions")
    op.drop_table("registry_models")
