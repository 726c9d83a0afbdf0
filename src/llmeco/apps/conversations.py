"""Support conversations, hand-offs and feedback in the project store.

Everything a user typed is redacted (:mod:`llmeco.governance.redact`) and then sealed with
AES-GCM (:mod:`llmeco.governance.crypto`) before it is written; each blob's AAD names its
table and row, so a blob moved to another row fails to open. Key rotation re-encrypts these
columns (they are registered with ``crypto.register_encrypted_column``).

Every row also names whom it is about and which request wrote it (:class:`Origin`: the API
key id, the OpenAI ``user`` field, the request id the audit ledger records), and the three
tables are registered with :mod:`llmeco.governance.subjects`, so retention ages them out and
``llmeco data forget`` / ``DELETE /admin/sessions/{id}`` erase a subject's rows.

The feedback loop: :meth:`ConversationLog.export` turns rated answers into training data that
``llmeco train sft`` reads (``{"messages": [...]}`` per line) or into preference pairs
(``{"prompt", "chosen", "rejected"}``) from corrections.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa

from llmeco.errors import InvalidRequest, NotFound
from llmeco.governance import crypto, redact, subjects
from llmeco.store import Base, Store

metadata = Base.metadata

messages_table = sa.Table(
    "support_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uid", sa.String(32), nullable=False, unique=True),
    sa.Column("session_id", sa.String(128), nullable=False, index=True),
    sa.Column("kb", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("response_id", sa.String(128), nullable=True, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    # 0008_subjects: whom the row is about, and the request that wrote it
    sa.Column("key_id", sa.String(32), nullable=True, index=True),
    sa.Column("end_user", sa.String(256), nullable=True, index=True),
    sa.Column("request_id", sa.String(128), nullable=True, index=True),
)

handoffs_table = sa.Table(
    "support_handoffs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uid", sa.String(32), nullable=False, unique=True),
    sa.Column("kb", sa.String(200), nullable=False, index=True),
    sa.Column("session_id", sa.String(128), nullable=False, index=True),
    sa.Column("response_id", sa.String(128), nullable=False),
    sa.Column("question", sa.LargeBinary, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("key_id", sa.String(32), nullable=True, index=True),
    sa.Column("end_user", sa.String(256), nullable=True, index=True),
    sa.Column("request_id", sa.String(128), nullable=True, index=True),
)

feedback_table = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uid", sa.String(32), nullable=False, unique=True),
    sa.Column("response_id", sa.String(128), nullable=False, index=True),
    sa.Column("rating", sa.SmallInteger, nullable=False),
    sa.Column("correction", sa.LargeBinary, nullable=True),
    sa.Column("comment", sa.LargeBinary, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    # the subject of the answer rated (copied from it) and the feedback request's id
    sa.Column("session_id", sa.String(128), nullable=True, index=True),
    sa.Column("key_id", sa.String(32), nullable=True, index=True),
    sa.Column("end_user", sa.String(256), nullable=True, index=True),
    sa.Column("request_id", sa.String(128), nullable=True, index=True),
)


def _aad(table: str, column: str) -> Any:
    return lambda row: f"{table}.{column}:{row['uid']}".encode()


for _table, _column in (
    (messages_table, "content"),
    (handoffs_table, "question"),
    (feedback_table, "correction"),
    (feedback_table, "comment"),
):
    crypto.register_encrypted_column(_table, _column, _aad(_table.name, _column))

for _table, _kind in (
    (messages_table, "conversations"),
    (handoffs_table, "handoffs"),
    (feedback_table, "feedback"),
):
    subjects.register_subject_table(
        _table,
        kind=_kind,
        time_column="created_at",
        subjects={"session": "session_id", "key": "key_id", "user": "end_user"},
    )


@dataclass(frozen=True)
class Origin:
    """Whom rows are about and which request wrote them (see the module doc)."""

    #: The API key id of the caller (None without auth).
    key_id: str | None = None
    #: The request's OpenAI ``user`` field (None when not sent).
    user: str | None = None
    #: The request id (the audit ledger's entry for that request has it).
    request_id: str | None = None

    def columns(self) -> dict[str, str | None]:
        """The row columns it fills."""
        return {"key_id": self.key_id, "end_user": self.user, "request_id": self.request_id}


NO_ORIGIN = Origin()


@dataclass(frozen=True)
class Handoff:
    """A question the assistant passed to a person."""

    id: str
    kb: str
    session_id: str
    response_id: str
    question: str
    reason: str
    created_at: datetime


ExportFormat = Literal["sft", "preference"]


class ConversationLog:
    """Reads and writes support sessions, hand-offs and feedback (redacted, encrypted)."""

    def __init__(self, store: Store, cipher: crypto.Cipher) -> None:
        self.store = store
        self.cipher = cipher

    def _seal(self, table: str, column: str, uid: str, text: str) -> bytes:
        aad = f"{table}.{column}:{uid}".encode()
        return self.cipher.encrypt(redact.redact(text).encode(), aad)

    def _open(self, table: str, column: str, uid: str, blob: bytes) -> str:
        return self.cipher.decrypt(blob, f"{table}.{column}:{uid}".encode()).decode()

    def record_turn(
        self,
        session_id: str,
        kb: str,
        question: str,
        answer: str,
        response_id: str,
        origin: Origin = NO_ORIGIN,
    ) -> None:
        """Append a user question and the answer given to it, in one transaction."""
        now = datetime.now(UTC)
        rows = []
        for role, text, rid in (("user", question, None), ("assistant", answer, response_id)):
            uid = uuid.uuid4().hex
            rows.append(
                {
                    "uid": uid,
                    "session_id": session_id,
                    "kb": kb,
                    "role": role,
                    "content": self._seal("support_messages", "content", uid, text),
                    "response_id": rid,
                    "created_at": now,
                    **origin.columns(),
                }
            )
        with self.store.session() as s:
            s.execute(sa.insert(messages_table), rows)

    def history(self, session_id: str, limit: int = 20) -> list[dict[str, str]]:
        """The session's last ``limit`` messages, oldest first (redacted text)."""
        t = messages_table
        with self.store.session() as s:
            rows = s.execute(
                sa.select(t.c.uid, t.c.role, t.c.content)
                .where(t.c.session_id == session_id)
                .order_by(t.c.id.desc())
                .limit(limit)
            ).all()
        return [
            {"role": r.role, "content": self._open("support_messages", "content", r.uid, r.content)}
            for r in reversed(rows)
        ]

    def record_handoff(
        self,
        kb: str,
        session_id: str,
        response_id: str,
        question: str,
        reason: str,
        origin: Origin = NO_ORIGIN,
    ) -> str:
        """Store a hand-off event; returns its id."""
        uid = uuid.uuid4().hex
        with self.store.session() as s:
            s.execute(
                sa.insert(handoffs_table).values(
                    uid=uid,
                    kb=kb,
                    session_id=session_id,
                    response_id=response_id,
                    question=self._seal("support_handoffs", "question", uid, question),
                    reason=reason,
                    created_at=datetime.now(UTC),
                    **origin.columns(),
                )
            )
        return uid

    def handoffs(self, kb: str | None = None, limit: int = 100) -> list[Handoff]:
        """The newest hand-offs (optionally of one knowledge base)."""
        t = handoffs_table
        query = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if kb is not None:
            query = query.where(t.c.kb == kb)
        with self.store.session() as s:
            rows = s.execute(query).all()
        return [
            Handoff(
                r.uid,
                r.kb,
                r.session_id,
                r.response_id,
                self._open("support_handoffs", "question", r.uid, r.question),
                r.reason,
                r.created_at,
            )
            for r in rows
        ]

    def record_feedback(
        self,
        response_id: str,
        rating: int,
        correction: str | None,
        comment: str | None,
        origin: Origin = NO_ORIGIN,
    ) -> str:
        """Thumbs up (1) or down (-1), with an optional corrected answer; returns its id.

        The feedback is about the rated answer's subject: its session, key and user are
        copied from that answer (the feedback request's ``origin`` fills what it lacks).

        Raises NotFound when no stored answer has ``response_id``.
        """
        if rating not in (-1, 1):
            raise InvalidRequest("rating must be 1 (up) or -1 (down)", param="rating")
        t = messages_table
        with self.store.session() as s:
            known = s.execute(
                sa.select(t.c.session_id, t.c.key_id, t.c.end_user)
                .where(t.c.response_id == response_id)
                .limit(1)
            ).first()
            if known is None:
                raise NotFound(f"no stored answer has id {response_id!r}", param="response_id")
            uid = uuid.uuid4().hex
            s.execute(
                sa.insert(feedback_table).values(
                    uid=uid,
                    response_id=response_id,
                    rating=rating,
                    correction=None
                    if correction is None
                    else self._seal("feedback", "correction", uid, correction),
                    comment=None
                    if comment is None
                    else self._seal("feedback", "comment", uid, comment),
                    created_at=datetime.now(UTC),
                    session_id=known.session_id,
                    key_id=known.key_id or origin.key_id,
                    end_user=known.end_user or origin.user,
                    request_id=origin.request_id,
                )
            )
        return uid

    def _exchange(self, response_id: str) -> tuple[list[dict[str, str]], str] | None:
        """The conversation up to a stored answer, and that answer."""
        t = messages_table
        with self.store.session() as s:
            row = s.execute(
                sa.select(t.c.id, t.c.session_id).where(t.c.response_id == response_id)
            ).first()
            if row is None:
                return None
            rows = s.execute(
                sa.select(t.c.uid, t.c.role, t.c.content)
                .where(t.c.session_id == row.session_id, t.c.id <= row.id)
                .order_by(t.c.id)
            ).all()
        msgs = [
            {"role": r.role, "content": self._open("support_messages", "content", r.uid, r.content)}
            for r in rows
        ]
        return msgs[:-1], msgs[-1]["content"]

    def export(self, fmt: ExportFormat) -> Iterator[dict[str, Any]]:
        """Training records from feedback: ``sft`` = conversations ending in a liked answer or
        in the correction of a disliked one; ``preference`` = correction chosen over answer."""
        t = feedback_table
        with self.store.session() as s:
            rows = s.execute(sa.select(t).order_by(t.c.id)).all()
        for r in rows:
            exchange = self._exchange(r.response_id)
            if exchange is None:
                continue
            prompt, answer = exchange
            correction = (
                None
                if r.correction is None
                else self._open("feedback", "correction", r.uid, r.correction)
            )
            if fmt == "sft":
                if correction is not None:
                    yield {"messages": [*prompt, {"role": "assistant", "content": correction}]}
                elif r.rating > 0:
                    yield {"messages": [*prompt, {"role": "assistant", "content": answer}]}
            elif correction is not None and correction != answer:
                yield {"prompt": prompt, "chosen": correction, "rejected": answer}


def dumps(record: dict[str, Any]) -> str:
    """One JSONL line."""
    return json.dumps(record, ensure_ascii=False)
