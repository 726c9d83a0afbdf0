"""``DELETE /admin/sessions/{session_id}``: erase everything stored about a support session.

Every conversation turn, feedback record and hand-off of the session is deleted in one
transaction; the audit ledger's entries stay (hashed) with their stored bodies erased (see
:mod:`llmeco.governance.erasure`). Answers the rows removed per table, or 404 when nothing
is stored for the session. Recorded as a ``data.forget`` admin entry (the session id only as
its SHA-256). Needs the ``admin`` scope.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

import llmeco.apps.conversations  # noqa: F401  (registers the conversation tables)
from llmeco.errors import NotFound
from llmeco.governance.erasure import forget
from llmeco.server.admin.router import Caller, get_caller
from llmeco.server.errors import ErrorResponse
from llmeco.store import Store

router = APIRouter(
    tags=["admin"],
    responses={c: {"model": ErrorResponse} for c in (400, 401, 403, 404)},
)


class ForgetResult(BaseModel):
    """What an erasure removed."""

    subject: str = Field(description="The kind of subject erased (`session`).")
    subject_sha256: str = Field(description="SHA-256 of the subject id, as the ledger has it.")
    counts: dict[str, int] = Field(description="Rows removed per table (ledger: bodies erased).")
    total: int


def _store(caller: Caller) -> Store:
    """The project store (the conversation log's, else the keys')."""
    state = caller.state
    if state.support is not None:
        return state.support.store
    return caller.auth.keys.store


@router.delete("/admin/sessions/{session_id}", response_model=ForgetResult)
async def forget_session(session_id: str, caller: Caller = Depends(get_caller)) -> ForgetResult:
    """Erase every stored record of a support session; 404 when nothing is stored for it."""
    store = _store(caller)
    report = await anyio.to_thread.run_sync(lambda: forget(store, "session", session_id))
    if not report.total:
        raise NotFound(f"nothing is stored for session {session_id!r}", param="session_id")
    await caller.audit("data.forget", report.ledger_details())
    return ForgetResult(**report.ledger_details(), total=report.total)
