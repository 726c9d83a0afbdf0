"""``/admin/audit/*``: the tamper-evident audit ledger over HTTP (``admin`` scope).

The same reads as ``llmeco audit``: entries (paged, filtered; bodies only when the ledger
keeps them and the caller asks), ``verify`` (the full re-walk of chain, Merkle tree and
checkpoints that ``llmeco audit verify --json`` prints), the signed checkpoints (and
signing one now, as ``llmeco audit checkpoint --now``), and an entry's inclusion proof
(what ``llmeco audit verify --proof`` checks offline). Archived entries are out of reach
here (their files are not the server's); the CLI's ``--archive`` reads them.

Everything recorded before a call is flushed to the store first, so a read sees the
requests that came before it. Database work runs in worker threads. A server without a
ledger answers 404 saying how to turn it on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

import anyio
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from llmeco.errors import InvalidRequest, NotFound
from llmeco.governance.audit import AuditLedger, latest_checkpoint, make_inclusion_proof
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.verify import read_entry, stored_checkpoints, verify_ledger
from llmeco.server.errors import ErrorResponse
from llmeco.server.state import ServerState, get_state

router = APIRouter(
    prefix="/admin/audit",
    tags=["admin"],
    responses={c: {"model": ErrorResponse} for c in (400, 401, 403, 404, 429)},
)

MAX_PAGE = 500
#: Largest sequence number a store column holds (signed 64-bit); larger is a 400, not a 500.
MAX_SEQ = 2**63 - 1


# ---- schemas ------------------------------------------------------------------------------


class AuditEntry(BaseModel):
    """One ledger entry: the hashed payload and its indexed copies (and bodies if asked)."""

    seq: int
    ts: str = Field(description="ISO 8601 UTC, microseconds.")
    kind: str = Field(description="request, admin or tool.")
    request_id: str | None = None
    key_id: str | None = Field(default=None, description="The key (or admin actor).")
    route: str | None = Field(default=None, description="Route template, admin action or tool.")
    status: int | None = None
    payload: dict[str, Any] = Field(description="The exact JSON that is hashed.")
    entry_hash: str
    bodies_redacted_at: str | None = Field(
        default=None, description="When the stored bodies were erased (data.forget)."
    )
    request_body: str | None = Field(default=None, description="Redacted; with bodies=true.")
    response_body: str | None = Field(default=None, description="Redacted; with bodies=true.")


class AuditEntryList(BaseModel):
    """A page of entries; pass ``last_seq`` as ``after`` for the next one."""

    object: Literal["list"] = "list"
    data: list[AuditEntry]
    has_more: bool
    first_seq: int | None = None
    last_seq: int | None = None


class VerifyProblem(BaseModel):
    """Something that failed to check (``seq``: the entry, when one is named)."""

    seq: int | None
    message: str


class VerifyResult(BaseModel):
    """The outcome of re-walking the ledger (``llmeco audit verify --json``)."""

    ok: bool
    entries: int
    checkpoints: int
    archived_up_to: int
    archived_checked: int
    unchecked_checkpoints: int
    first_bad_seq: int | None
    problems: list[VerifyProblem]
    notes: list[str]
    public_key: str = Field(description="The key the checkpoints were checked under.")


class AuditCheckpoint(BaseModel):
    """A signed statement of the tree's size and Merkle root (the export format)."""

    id: int | None = Field(default=None, description="Row id in the store.")
    log: str
    size: int
    root_hash: str
    timestamp: str
    public_key: str
    signature: str


class CheckpointList(BaseModel):
    """Stored checkpoints, newest first."""

    object: Literal["list"] = "list"
    data: list[AuditCheckpoint]


class InclusionProof(BaseModel):
    """Proof that entry ``seq`` is leaf ``leaf_index`` of the signed tree of ``tree_size``."""

    type: Literal["inclusion"]
    seq: int
    leaf_index: int
    tree_size: int
    entry: str = Field(description="The entry's payload, exactly as hashed.")
    leaf_hash: str
    audit_path: list[str]
    checkpoint: AuditCheckpoint


# ---- helpers ------------------------------------------------------------------------------


def get_ledger(state: ServerState = Depends(get_state)) -> AuditLedger:
    """The server's ledger (a FastAPI dependency); 404 when it keeps none."""
    if state.ledger is None:
        raise NotFound(
            "this server keeps no audit ledger (start it with LLMECO_AUDIT=true to record "
            "every request and admin action)"
        )
    return state.ledger


def _ledger_time(value: str | None, param: str) -> str | None:
    """An ISO 8601 time as the ledger writes it (UTC, microseconds, ``Z``), for comparing."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"{param} must be an ISO 8601 time such as 2026-01-31T12:00:00Z", param=param
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _entries(
    ledger: AuditLedger,
    *,
    key_id: str | None,
    route: str | None,
    kind: str | None,
    since: str | None,
    until: str | None,
    after: int | None,
    order: str,
    limit: int,
    bodies: bool,
) -> AuditEntryList:
    """One page of entries (runs in a worker thread)."""
    ledger.flush()
    c = t.entries.c
    query = sa.select(t.entries)
    if key_id is not None:
        query = query.where(c.key_id == key_id)
    if route is not None:
        query = query.where(
            c.route.startswith(route[:-1], autoescape=True)
            if route.endswith("*")
            else c.route == route
        )
    if kind is not None:
        query = query.where(c.kind == kind)
    if since is not None:
        query = query.where(c.ts >= since)
    if until is not None:
        query = query.where(c.ts < until)
    if after is not None:
        query = query.where(c.seq > after if order == "asc" else c.seq < after)
    query = query.order_by(c.seq.asc() if order == "asc" else c.seq.desc()).limit(limit + 1)
    with ledger.store.session() as s:
        rows = s.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    data = []
    for r in rows:
        entry = AuditEntry(
            seq=r.seq,
            ts=r.ts,
            kind=r.kind,
            request_id=r.request_id,
            key_id=r.key_id,
            route=r.route,
            status=r.status,
            payload=_json(r.payload),
            entry_hash=r.entry_hash,
            bodies_redacted_at=r.bodies_redacted_at,
        )
        if bodies and ledger.cipher is not None:
            full = read_entry(ledger.store, int(r.seq), ledger.cipher)
            entry.request_body = full.get("request_body")
            entry.response_body = full.get("response_body")
        data.append(entry)
    return AuditEntryList(
        data=data,
        has_more=more,
        first_seq=data[0].seq if data else None,
        last_seq=data[-1].seq if data else None,
    )


def _json(text: str) -> dict[str, Any]:
    import json

    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def _checkpoint(data: dict[str, Any], row_id: int | None = None) -> AuditCheckpoint:
    return AuditCheckpoint(id=row_id, **data)


# ---- routes -------------------------------------------------------------------------------


@router.get("/entries", response_model=AuditEntryList)
async def list_entries(
    ledger: AuditLedger = Depends(get_ledger),
    key_id: str | None = Query(default=None, max_length=200, description="One key or actor."),
    route: str | None = Query(
        default=None,
        max_length=500,
        description="Route template (`/v1/chat/completions`), admin action (`key.create`) or "
        "tool; a trailing `*` matches a prefix.",
    ),
    kind: Literal["request", "admin", "tool"] | None = Query(default=None),
    since: str | None = Query(default=None, max_length=64, description="ISO 8601, inclusive."),
    until: str | None = Query(default=None, max_length=64, description="ISO 8601, exclusive."),
    after: int | None = Query(
        default=None,
        ge=0,
        le=MAX_SEQ,
        description="Cursor: continue after this seq (in `order`).",
    ),
    order: Literal["asc", "desc"] = Query(default="desc", description="By seq; newest first."),
    limit: int = Query(default=100, ge=1, le=MAX_PAGE),
    bodies: bool = Query(default=False, description="Include the stored, redacted bodies."),
) -> AuditEntryList:
    """Ledger entries, newest first by default, filtered by key, route, kind and time."""
    if bodies and not ledger.store_bodies:
        raise InvalidRequest(
            "this ledger keeps no bodies (LLMECO_AUDIT_STORE_BODIES is off)", param="bodies"
        )
    lo, hi = _ledger_time(since, "since"), _ledger_time(until, "until")
    return await anyio.to_thread.run_sync(
        partial(
            _entries,
            ledger,
            key_id=key_id,
            route=route,
            kind=kind,
            since=lo,
            until=hi,
            after=after,
            order=order,
            limit=limit,
            bodies=bodies,
        )
    )


@router.get("/verify", response_model=VerifyResult)
async def verify(ledger: AuditLedger = Depends(get_ledger)) -> VerifyResult:
    """Re-walk the whole live ledger: chain, Merkle tree, every stored checkpoint's
    signature and root (``ok: false`` names the first bad entry)."""

    def run() -> VerifyResult:
        ledger.flush()
        key = ledger.signer.public_key
        report = verify_ledger(ledger.store, key)
        return VerifyResult(**report.to_dict(), public_key=key)

    return await anyio.to_thread.run_sync(run)


@router.get("/checkpoints", response_model=CheckpointList)
async def list_checkpoints(
    ledger: AuditLedger = Depends(get_ledger),
    limit: int = Query(default=100, ge=1, le=MAX_PAGE),
) -> CheckpointList:
    """The stored signed checkpoints, newest first."""
    rows = await anyio.to_thread.run_sync(stored_checkpoints, ledger.store)
    newest = list(reversed(rows))[:limit]
    return CheckpointList(data=[_checkpoint(cp.to_dict(), cid) for cid, cp in newest])


@router.post("/checkpoints", status_code=201, response_model=AuditCheckpoint)
async def sign_checkpoint(ledger: AuditLedger = Depends(get_ledger)) -> AuditCheckpoint:
    """Sign a checkpoint of everything recorded so far (``llmeco audit checkpoint --now``);
    answers the latest one when nothing new is uncovered."""

    def run() -> AuditCheckpoint:
        ledger.flush()
        cp = ledger.checkpoint_now() or latest_checkpoint(ledger.store)
        if cp is None:
            raise NotFound("the ledger is empty: there is nothing to sign")
        return _checkpoint(cp.to_dict())

    return await anyio.to_thread.run_sync(run)


@router.get("/entries/{seq}/proof", response_model=InclusionProof)
async def prove(
    seq: int = PathParam(ge=1, le=MAX_SEQ, description="The entry to prove."),
    ledger: AuditLedger = Depends(get_ledger),
) -> InclusionProof:
    """An inclusion proof of entry ``seq`` against the latest signed checkpoint (404 until
    a checkpoint covers it: ``POST /admin/audit/checkpoints`` signs one now)."""

    def run() -> InclusionProof:
        ledger.flush()
        try:
            proof = make_inclusion_proof(ledger.store, seq)
        except NotFound as exc:
            raise NotFound(
                exc.message.replace(
                    "run `llmeco audit checkpoint --now`", "POST /admin/audit/checkpoints"
                ),
                param="seq",
            ) from None
        cp = proof.pop("checkpoint")
        return InclusionProof(**proof, checkpoint=_checkpoint(cp))

    return await anyio.to_thread.run_sync(run)
