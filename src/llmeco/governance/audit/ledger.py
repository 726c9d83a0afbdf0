"""The tamper-evident audit ledger: a hash chain with signed Merkle checkpoints.

What is recorded
    Every HTTP request (by the server's ASGI middleware, ``server/audit.py``), every admin
    action (``ledger.record_admin(actor, action, details)``, called by whoever creates or
    revokes a key, loads a model or moves an alias) and every MCP tool call
    (``ledger.arecord_tool(ToolRecord(...))``: the tool, who called it, SHA-256 of its
    arguments and of its result, never their content). Each entry's payload is canonical JSON
    (sorted keys, no spaces, UTF-8) with ``seq`` (1, 2, …), ``ts`` and ``kind`` (``request``,
    ``admin`` or ``tool``).

Hash chain and Merkle tree
    ``entry_hash = SHA-256(prev_hash ‖ payload)`` (both hashes raw bytes; the first entry's
    ``prev_hash`` is 32 zero bytes), so changing, removing or reordering any entry breaks every
    later link. Each payload is also a leaf of an RFC 6962 Merkle tree (``audit/merkle.py``); every
    ``LLMECO_AUDIT_CHECKPOINT_ENTRIES`` entries or ``LLMECO_AUDIT_CHECKPOINT_SECONDS``
    seconds a checkpoint (size, root, time) is signed with Ed25519 (``audit/checkpoint.py``).
    A checkpoint exported elsewhere pins the past: rewriting the whole chain, or cutting its
    tail, no longer matches it. ``audit/verify.py`` re-walks all of it.

Durability without the hot path: one writer thread, group commit
    ``record_*`` only appends to an in-memory queue and returns a
    :class:`concurrent.futures.Future` (``arecord_*``: the same, awaited on the event loop).
    A single writer thread per ledger takes *everything* pending, and in one transaction
    (straight on the driver, ``audit/sql.py``) assigns seqs, computes the chain and tree,
    inserts the rows, writes a checkpoint when one is due and moves the head; then it
    resolves each waiter with its seq (one event-loop wake-up per commit, however many
    waiters). The server awaits its entry before the response completes
    (before returning a non-streamed body; before sending a stream's final ``data: [DONE]``),
    so an acknowledged request always has a committed entry — also after ``kill -9`` — while
    many concurrent requests share one commit. Committed means: SQLite WAL with
    ``synchronous=NORMAL`` (survives the process dying; a power cut may lose the last
    transactions) or PostgreSQL's own commit (fsynced by default). A request that never got
    its answer may or may not have an entry.

One writer per database, several processes
    Each append transaction starts by ``UPDATE audit_head … WHERE id = 1``: on PostgreSQL that
    row lock serialises replicas (the head is re-read under the lock, so chains never fork);
    on SQLite it takes the database write lock before anything is read (no stale snapshot).
    So server replicas and CLI commands (``llmeco keys create``) may all append; they share one
    chain, and must share the signing key (``LLMECO_AUDIT_SIGNING_KEY``).

Bodies
    Only their SHA-256 and size are recorded, unless ``LLMECO_AUDIT_STORE_BODIES`` is on:
    then the writer thread PII-redacts them (``governance/redact.py``) and seals them with AES-GCM
    (``governance/crypto.py``) in ``request_body``/``response_body``, outside the hashed payload.

Failure
    A transaction that fails is retried with back-off; if the store stays unavailable the
    futures fail, and the server answers 503 instead of acknowledging an unaudited request.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from llmeco.errors import EngineDead, InvalidRequest
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.checkpoint import Checkpoint, Signer, canonical_json
from llmeco.governance.audit.merkle import Frontier, leaf_hash
from llmeco.governance.audit.sql import LedgerSQL, WriterConnection
from llmeco.governance.crypto import Cipher, register_encrypted_column
from llmeco.settings import Settings
from llmeco.store import Store

log = logging.getLogger("llmeco.audit")
T = TypeVar("T")

#: Most entries one transaction appends (the rest wait for the next one).
MAX_BATCH = 1000
#: Seconds between attempts when a commit fails; after the last the entries' futures fail.
RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)

register_encrypted_column(
    t.entries, "request_body", lambda row: f"audit:{row['seq']}:request".encode()
)
register_encrypted_column(
    t.entries, "response_body", lambda row: f"audit:{row['seq']}:response".encode()
)


def utc_now() -> str:
    """The current time as the ledger writes it: ISO 8601, microseconds, ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class RequestRecord:
    """What the ledger keeps about one HTTP request."""

    request_id: str
    method: str
    path: str
    route: str
    status: int
    latency_ms: float
    request_sha256: str
    response_sha256: str
    request_bytes: int
    response_bytes: int
    started: str
    key_id: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    #: Raw bodies, kept (redacted, sealed) only when the ledger stores bodies.
    request_body: bytes | None = field(default=None, repr=False)
    response_body: bytes | None = field(default=None, repr=False)

    def fields(self) -> dict[str, Any]:
        """The hashed fields (bodies excluded)."""
        return {name: getattr(self, name) for name in _RECORD_FIELDS}


_RECORD_FIELDS = tuple(
    f.name for f in fields(RequestRecord) if f.name not in ("request_body", "response_body")
)


@dataclass(frozen=True)
class ToolRecord:
    """What the ledger keeps about one MCP tool call: hashes, never arguments or results."""

    #: Tool name (``search_knowledge_base``, ``chat`` …).
    tool: str
    #: Who called it: the API key id over HTTP, ``"stdio"`` for ``llmeco mcp serve``, None
    #: over HTTP without auth.
    actor: str | None
    request_id: str
    #: SHA-256 (hex) of the canonical JSON of the call's arguments.
    arguments_sha256: str
    #: SHA-256 (hex) of the canonical JSON of the result sent back, errors included (its
    #: ``content``, ``structuredContent`` and ``isError``); "" for a call cancelled midway.
    result_sha256: str
    duration_ms: float
    #: The HTTP status the outcome maps to: 200, the error's (400, 403, 404, 429 …), or 499
    #: for a call cancelled midway.
    status: int
    #: ``"http"`` (``/mcp``) or ``"stdio"``.
    transport: str

    def fields(self) -> dict[str, Any]:
        """The hashed fields."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def indexed_columns(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptive columns a payload implies (verify checks the stored ones match)."""
    kind = payload.get("kind")
    if kind == "admin":
        key_id, route = payload.get("actor"), payload.get("action")
    elif kind == "tool":
        key_id, route = payload.get("actor"), payload.get("tool")
    else:
        key_id, route = payload.get("key_id"), payload.get("route")
    return {
        "ts": payload.get("ts"),
        "kind": kind,
        "request_id": payload.get("request_id"),
        "key_id": key_id,
        "route": route,
        "status": payload.get("status"),
    }


def chain_hash(prev_hash: str, payload: bytes) -> str:
    """``SHA-256(prev_hash ‖ payload)`` as hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + payload).hexdigest()


#: Prefix of a stored body that was binary (audio, a multipart upload with a file in it).
BINARY_BODY_PREFIX = "base64:"


def storable_body(body: bytes) -> str:
    """A body as the ledger stores it: text PII-redacted; a body that is not UTF-8 (audio, a
    multipart upload carrying a file) as ``base64:`` and its bytes, whole — there is no text
    to redact in it, and a recording mangled by text decoding could not be played back."""
    from llmeco.governance.redact import redact

    try:
        return redact(body.decode("utf-8"))
    except UnicodeDecodeError:
        return BINARY_BODY_PREFIX + base64.b64encode(body).decode("ascii")


def latest_checkpoint(store: Store) -> Checkpoint | None:
    """The stored checkpoint covering the most entries (newest among equals)."""
    c = t.checkpoints.c
    query = sa.select(t.checkpoints).order_by(c.size.desc(), c.id.desc()).limit(1)
    with store.session() as s:
        r = s.execute(query).first()
    if r is None:
        return None
    return Checkpoint(r.size, r.root_hash, r.ts, r.public_key, r.signature)


def _resolve(future: Future[T], value: T) -> None:
    """Set a result unless the waiter gave up (a cancelled future; the entry is kept)."""
    with contextlib.suppress(InvalidStateError):
        future.set_result(value)


def _fail(future: Future[Any], exc: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):
        future.set_exception(exc)


def _admin_fields(actor: str, action: str, details: Mapping[str, Any] | None) -> dict[str, Any]:
    details = dict(details or {})
    try:
        canonical_json(details)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"audit details must be JSON values: {exc}") from None
    return {"actor": actor, "action": action, "details": details}


def _settle_in_loop(items: list[tuple[asyncio.Future[int], int]], error: Exception | None) -> None:
    """Runs on an event loop: resolve its waiters of one commit (skipping cancelled ones)."""
    for future, seq in items:
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(seq)


@dataclass
class _Pending:
    kind: str
    fields: dict[str, Any]
    #: A thread future (``record_*``) or an event-loop future (``arecord_*``).
    future: Future[int] | asyncio.Future[int]
    bodies: tuple[bytes | None, bytes | None] | None = None


class AuditLedger:
    """Appends entries through one writer thread with group commit (see the module doc)."""

    def __init__(
        self,
        store: Store,
        signer: Signer,
        *,
        cipher: Cipher | None = None,
        store_bodies: bool = False,
        checkpoint_entries: int = 1000,
        checkpoint_seconds: float = 60.0,
        owns_store: bool = False,
    ) -> None:
        if store_bodies and cipher is None:
            raise ValueError("storing bodies needs a cipher to seal them")
        self.store = store
        self.signer = signer
        self.cipher = cipher
        self.store_bodies = store_bodies
        self.checkpoint_entries = checkpoint_entries
        self.checkpoint_seconds = checkpoint_seconds
        self._owns_store = owns_store
        self._queue: collections.deque[_Pending] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._force_checkpoint: list[Future[Checkpoint | None]] = []
        self._barriers: list[Future[None]] = []
        # Cached from the head after each commit, to time the next checkpoint.
        self._size = 0
        self._cp_size = 0
        self._cp_time = 0.0
        self.commits = 0
        self._sql = LedgerSQL.for_engine(store.engine)
        self._conn: WriterConnection | None = None  # the writer thread's own
        dbapi = store.engine.dialect.loaded_dbapi
        #: What a failed commit raises: the driver's errors (retried), or SQLAlchemy's.
        self._db_errors: tuple[type[Exception], ...] = (DBAPIError, dbapi.Error)

    @classmethod
    def open(cls, settings: Settings, store: Store | None = None) -> AuditLedger:
        """The ledger of the store the settings name (migrated), keys from settings/home."""
        own = store is None
        store = store or Store.from_settings(settings)
        store.migrate()
        return cls(
            store,
            Signer.from_settings(settings),
            cipher=Cipher.from_settings(settings) if settings.audit_store_bodies else None,
            store_bodies=settings.audit_store_bodies,
            checkpoint_entries=settings.audit_checkpoint_entries,
            checkpoint_seconds=settings.audit_checkpoint_seconds,
            owns_store=own,
        )

    # ---- recording -------------------------------------------------------------------------

    def record_request(self, record: RequestRecord) -> Future[int]:
        """Queue a request's entry; the future gives its seq once committed."""
        future: Future[int] = Future()
        self._enqueue(_Pending("request", record.fields(), future, self._bodies(record)))
        return future

    async def arecord_request(self, record: RequestRecord) -> int:
        """Queue a request's entry and wait for its commit; returns its seq.

        The server's path: the writer resolves every waiter of one commit with a single
        wake-up of the event loop. A waiter cancelled (client gone) still gets its entry.
        """
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._enqueue(_Pending("request", record.fields(), future, self._bodies(record)))
        return await future

    def _bodies(self, record: RequestRecord) -> tuple[bytes | None, bytes | None] | None:
        return (record.request_body, record.response_body) if self.store_bodies else None

    def record_admin(
        self, actor: str, action: str, details: Mapping[str, Any] | None = None
    ) -> Future[int]:
        """Queue an admin action (``actor``: the key id or user acting; ``action``: e.g.
        ``key.create``, ``key.revoke``, ``model.load``, ``alias.move``; ``details``: JSON
        values, never secrets). ``.result()`` waits for the commit; from async code use
        :meth:`arecord_admin`."""
        future: Future[int] = Future()
        self._enqueue(_Pending("admin", _admin_fields(actor, action, details), future))
        return future

    async def arecord_admin(
        self, actor: str, action: str, details: Mapping[str, Any] | None = None
    ) -> int:
        """:meth:`record_admin` and wait (without blocking the event loop) for the commit."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._enqueue(_Pending("admin", _admin_fields(actor, action, details), future))
        return await future

    def record_tool(self, record: ToolRecord) -> Future[int]:
        """Queue an MCP tool call's entry; the future gives its seq once committed (for a
        call that was cancelled and cannot wait; otherwise use :meth:`arecord_tool`)."""
        future: Future[int] = Future()
        self._enqueue(_Pending("tool", record.fields(), future))
        return future

    async def arecord_tool(self, record: ToolRecord) -> int:
        """Queue an MCP tool call's entry and wait (without blocking the event loop) for its
        commit; returns its seq. The MCP server sends the result only after this."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._enqueue(_Pending("tool", record.fields(), future))
        return await future

    def _enqueue(self, pending: _Pending) -> None:
        with self._cond:
            if self._closing:
                raise EngineDead("the audit ledger is closed")
            self._queue.append(pending)
            self._cond.notify()
        if self._thread is None:
            self.start()

    def checkpoint_now(self, timeout: float = 30.0) -> Checkpoint | None:
        """Commit everything queued, sign a checkpoint if any entry is not covered yet, and
        return the latest checkpoint (None while the ledger is empty)."""
        future: Future[Checkpoint | None] = Future()
        with self._cond:
            self._force_checkpoint.append(future)
            self._cond.notify()
        if self._thread is None:
            self.start()
        return future.result(timeout) or latest_checkpoint(self.store)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything recorded so far is committed (or has failed)."""
        barrier: Future[None] = Future()
        with self._cond:
            self._barriers.append(barrier)
            self._cond.notify()
        if self._thread is None:
            self.start()
        barrier.result(timeout)

    def frontier(self) -> tuple[int, int, float]:
        """Entries committed, entries the newest checkpoint covers, and that checkpoint's
        Unix time, as this writer last saw them (read by the server's metrics)."""
        return self._size, self._cp_size, self._cp_time

    # ---- lifetime --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (done on first use anyway)."""
        with self._cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, checkpoint any entries not yet covered, stop the writer."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> AuditLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (
                    self._queue or self._closing or self._force_checkpoint or self._barriers
                ):
                    wait = self._checkpoint_wait()
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                n = min(len(self._queue), MAX_BATCH)
                batch = [self._queue.popleft() for _ in range(n)]
                forced, self._force_checkpoint = self._force_checkpoint, []
                closing = self._closing and not self._queue
                barriers: list[Future[None]] = []
                if not self._queue:  # a barrier passes once everything before it is written
                    barriers, self._barriers = self._barriers, []
            wait = self._checkpoint_wait()
            if batch or forced or closing or (wait is not None and wait <= 0):
                self._write(batch, forced, final=closing)  # never raises: it fails futures
            for barrier in barriers:
                _resolve(barrier, None)
            if closing:
                self._drop_connection()
                return

    def _checkpoint_wait(self) -> float | None:
        """Seconds until a time-based checkpoint is due; None when nothing is uncovered."""
        if self._size <= self._cp_size:
            return None
        return self._cp_time + self.checkpoint_seconds - time.time()

    def _write(
        self, batch: list[_Pending], forced: list[Future[Checkpoint | None]], final: bool
    ) -> None:
        try:
            sealed_bodies = [self._prepare_bodies(p) for p in batch]
            attempt = 0
            while True:
                try:
                    seqs, cp = self._commit(batch, sealed_bodies, force=bool(forced) or final)
                    break
                except self._db_errors as exc:
                    self._drop_connection()
                    if attempt == len(RETRY_DELAYS):
                        raise
                    log.warning("audit commit failed; retrying", extra={"error": str(exc)[:300]})
                    time.sleep(RETRY_DELAYS[attempt])
                    attempt += 1
        except Exception as exc:  # the store is gone, or a bug: fail loudly, keep running
            log.error("audit ledger cannot commit", exc_info=exc)
            dead = EngineDead(f"the audit ledger cannot commit: {exc}")
            self._settle(batch, [0] * len(batch), dead)
            for f in forced:
                _fail(f, dead)
            return
        self.commits += 1
        self._settle(batch, seqs, None)
        for f in forced:
            _resolve(f, cp)

    @staticmethod
    def _settle(batch: list[_Pending], seqs: list[int], error: Exception | None) -> None:
        """Resolve the batch's waiters: thread futures directly, event-loop futures with one
        ``call_soon_threadsafe`` per loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
        for p, seq in zip(batch, seqs, strict=True):
            f = p.future
            if isinstance(f, Future):
                if error is not None:
                    _fail(f, error)
                else:
                    _resolve(f, seq)
            else:
                by_loop.setdefault(f.get_loop(), []).append((f, seq))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle_in_loop, items, error)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken; nothing to save
                conn.discard()

    def _prepare_bodies(self, p: _Pending) -> tuple[str, str] | None:
        """Bodies ready to seal, off the request path (see :func:`storable_body`)."""
        if p.bodies is None or self.cipher is None:
            return None
        req, resp = p.bodies
        return storable_body(req or b""), storable_body(resp or b"")

    def _commit(
        self, batch: list[_Pending], bodies: list[tuple[str, str] | None], force: bool
    ) -> tuple[list[int], Checkpoint | None]:
        now = time.time()
        if self._conn is None:  # the writer keeps one connection (no pool round trip)
            self._conn = WriterConnection(self.store.engine, self._sql)
        conn = self._conn
        try:
            # Lock and read the head first: serialises every writer of this database.
            head = conn.lock_head()
            seq, prev = head.seq, head.entry_hash
            frontier = Frontier.from_hex(seq, json.loads(head.frontier))
            rows: list[dict[str, Any]] = []
            seqs: list[int] = []
            for p, sealed in zip(batch, bodies, strict=True):
                seq += 1
                payload_obj = {**p.fields, "seq": seq, "ts": utc_now(), "kind": p.kind}
                payload = canonical_json(payload_obj)
                entry_hash = chain_hash(prev, payload)
                leaf = leaf_hash(payload)
                frontier.append(leaf)
                row: dict[str, Any] = {
                    "seq": seq,
                    **indexed_columns(payload_obj),
                    "payload": payload.decode(),
                    "prev_hash": prev,
                    "entry_hash": entry_hash,
                    "leaf_hash": leaf.hex(),
                    "request_body": None,
                    "response_body": None,
                }
                if sealed is not None and self.cipher is not None:
                    row["request_body"] = self.cipher.encrypt(
                        sealed[0].encode(), f"audit:{seq}:request".encode()
                    )
                    row["response_body"] = self.cipher.encrypt(
                        sealed[1].encode(), f"audit:{seq}:response".encode()
                    )
                rows.append(row)
                seqs.append(seq)
                prev = entry_hash
            if rows:
                conn.insert_entries(rows)
            cp_size, cp_time = head.checkpoint_size, head.checkpoint_time
            checkpoint: Checkpoint | None = None
            uncovered = frontier.size - cp_size
            if uncovered > 0 and (
                force
                or uncovered >= self.checkpoint_entries
                or now - cp_time >= self.checkpoint_seconds
            ):
                checkpoint = self.signer.sign(frontier.size, frontier.root().hex(), utc_now())
                conn.insert_checkpoint(
                    {
                        "size": checkpoint.size,
                        "root_hash": checkpoint.root_hash,
                        "ts": checkpoint.timestamp,
                        "public_key": checkpoint.public_key,
                        "signature": checkpoint.signature,
                    }
                )
                cp_size, cp_time = frontier.size, now
            conn.move_head(
                {
                    "seq": seq,
                    "entry_hash": prev,
                    "frontier": json.dumps(frontier.to_hex()),
                    "checkpoint_size": cp_size,
                    "checkpoint_time": cp_time,
                }
            )
            conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        self._size, self._cp_size, self._cp_time = frontier.size, cp_size, cp_time
        return seqs, checkpoint
