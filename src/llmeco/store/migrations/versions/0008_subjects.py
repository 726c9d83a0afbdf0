"""Retention and erasure: whom each conversation row is about, and when ledger bodies were
erased.

Support messages, hand-offs and feedback get the caller's API key id, the OpenAI ``user``
field (``end_user``) and the id of the request that wrote them (linking the audit ledger's
entry); feedback also gets the session of the answer it rates. Existing rows get the request
id back from their ``chatcmpl-<request id>`` response id, and feedback its session from the
answer. Indexes on the time and subject columns keep purges and erasure off full scans.
``audit_entries.bodies_redacted_at`` marks entries whose bodies were erased (outside the
hashed payload, so the ledger still verifies).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_subjects"
down_revision = "0007_support_gates"
branch_labels = None
depends_on = ("0003_audit",)

_PREFIX = "chatcmpl-"
_SUBJECT_COLUMNS = (
    ("key_id", sa.String(32)),
    ("end_user", sa.String(256)),
    ("request_id", sa.String(128)),
)
_NEW_INDEXES = {
    "support_messages": ("created_at", "key_id", "end_user", "request_id"),
    "support_handoffs": ("session_id", "key_id", "end_user", "request_id"),
    "feedback": ("created_at", "session_id", "key_id", "end_user", "request_id"),
}


def _index(table: str, column: str) -> str:
    return f"ix_{table}_{column}"


def upgrade() -> None:
    for table in ("support_messages", "support_handoffs", "feedback"):
        if table == "feedback":
            op.add_column(table, sa.Column("session_id", sa.String(128), nullable=True))
        for name, type_ in _SUBJECT_COLUMNS:
            op.add_column(table, sa.Column(name, type_, nullable=True))
    start = len(_PREFIX) + 1
    for table in ("support_messages", "support_handoffs"):
        op.execute(
            f"UPDATE {table} SET request_id = substr(response_id, {start}) "
            f"WHERE response_id LIKE '{_PREFIX}%'"
        )
    op.execute(
        "UPDATE feedback SET session_id = (SELECT m.session_id FROM support_messages m "
        "WHERE m.response_id = feedback.response_id ORDER BY m.id LIMIT 1)"
    )
    for table, columns in _NEW_INDEXES.items():
        for column in columns:
            op.create_index(_index(table, column), table, [column])
    op.add_column("audit_entries", sa.Column("bodies_redacted_at", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_entries", "bodies_redacted_at")
    for table, columns in _NEW_INDEXES.items():
        for column in columns:
            op.drop_index(_index(table, column), table_name=table)
    for table in ("support_messages", "support_handoffs", "feedback"):
        with op.batch_alter_table(table) as batch:
            for name, _ in _SUBJECT_COLUMNS:
                batch.drop_column(name)
            if table == "feedback":
                batch.drop_column("session_id")
