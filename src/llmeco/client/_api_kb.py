"""Client methods of the knowledge-base (``/v1/kb``) and audit-ledger (``/admin/audit``)
routes, written once like those of :mod:`._api` (whose :data:`~._api.ROUTES` includes
:data:`ROUTES` here)."""

from __future__ import annotations

import mimetypes
import os
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

from llmeco.client import types as t
from llmeco.client._core import Call, Route, build

_POST, _GET, _DELETE = "POST", "GET", "DELETE"

#: Method name → route, for the knowledge-base and audit methods.
ROUTES: dict[str, Route] = {
    # knowledge bases
    "list_kbs": Route(_GET, "/v1/kb", t.KbList),
    "create_kb": Route(_POST, "/v1/kb", t.KbSummary, (t.CreateKbRequest,)),
    "get_kb": Route(_GET, "/v1/kb/{name}", t.KbDetails),
    "delete_kb": Route(_DELETE, "/v1/kb/{name}", t.KbDeleted),
    # adding is idempotent on the server: the same bytes again are "unchanged"
    "upload_document": Route(
        _POST,
        "/v1/kb/{name}/documents",
        t.DocumentAdded,
        (t.DocumentForm,),
        multipart=True,
        idempotent=True,
    ),
    "add_text": Route(
        _POST,
        "/v1/kb/{name}/documents/text",
        t.DocumentAdded,
        (t.AddTextRequest,),
        idempotent=True,
    ),
    "remove_document": Route(_DELETE, "/v1/kb/{name}/documents/{document}", t.DocumentDeleted),
    "search_kb": Route(
        _POST, "/v1/kb/{name}/search", t.SearchResponse, (t.SearchRequest,), idempotent=True
    ),
    # audit ledger
    "audit_entries": Route(
        _GET,
        "/admin/audit/entries",
        t.AuditEntryList,
        query=("key_id", "route", "kind", "since", "until", "after", "order", "limit", "bodies"),
    ),
    "audit_verify": Route(_GET, "/admin/audit/verify", t.VerifyResult),
    "audit_checkpoints": Route(
        _GET, "/admin/audit/checkpoints", t.CheckpointList, query=("limit",)
    ),
    "audit_sign_checkpoint": Route(
        _POST, "/admin/audit/checkpoints", t.AuditCheckpoint, idempotent=True
    ),
    "audit_proof": Route(_GET, "/admin/audit/entries/{seq}/proof", t.InclusionProof),
}

FileInput = bytes | str | os.PathLike[str] | IO[bytes]


# ---------------------------------------------------------------- knowledge bases


def list_kbs() -> Call[t.KbList]:
    """The knowledge bases the calling key may see, with document and chunk counts (``chat``
    scope; a key's model allow-list must admit ``support:<kb>``)."""
    return build(ROUTES["list_kbs"])


def create_kb(name: str) -> Call[t.KbSummary]:
    """Create an empty knowledge base (``admin``); 400 when the name is bad or taken."""
    return build(ROUTES["create_kb"], body=t.CreateKbRequest(name=name))


def get_kb(name: str) -> Call[t.KbDetails]:
    """One knowledge base with its documents (``document_list``)."""
    return build(ROUTES["get_kb"], path_params={"name": name})


def delete_kb(name: str) -> Call[t.KbDeleted]:
    """Delete a knowledge base with all its documents (``admin``)."""
    return build(ROUTES["delete_kb"], path_params={"name": name})


def _file(file: FileInput, filename: str | None) -> tuple[str, bytes]:
    """The upload's file name and bytes, from bytes (``filename`` needed), a path or a
    binary file."""
    if isinstance(file, bytes):
        if not filename:
            raise ValueError("give filename= with bytes: its suffix says how to read them")
        return filename, file
    if isinstance(file, str | os.PathLike):
        path = Path(file)
        return filename or path.name, path.read_bytes()
    data = file.read()
    return filename or Path(str(getattr(file, "name", "upload"))).name, data


def upload_document(
    name: str,
    file: FileInput,
    *,
    filename: str | None = None,
    document: str | None = None,
) -> Call[t.DocumentAdded]:
    """Add or replace a document of knowledge base ``name`` from a file (``admin``): a
    path, a binary file, or bytes with ``filename``; .txt .md .html .pdf .docx, read like
    ``llmeco kb add``. ``document`` names it in the KB (default: the file name). The same
    bytes again are ``unchanged``; a file that cannot be read is a 400 naming it."""
    upload_name, data = _file(file, filename)
    form = t.DocumentForm(file=data, document=document)
    call = build(ROUTES["upload_document"], path_params={"name": name})
    call.data = {k: str(v) for k, v in form.model_dump(exclude_none=True, exclude={"file"}).items()}
    media = mimetypes.guess_type(upload_name)[0] or "application/octet-stream"
    call.files = {"file": (upload_name, data, media)}
    return call


def add_text(name: str, document: str, text: str) -> Call[t.DocumentAdded]:
    """Add or replace document ``document`` of knowledge base ``name`` from Markdown or
    plain text (``admin``)."""
    body = t.AddTextRequest(name=document, text=text)
    return build(ROUTES["add_text"], path_params={"name": name}, body=body)


def remove_document(name: str, document: str) -> Call[t.DocumentDeleted]:
    """Remove one document (as :meth:`get_kb` lists it) and its chunks (``admin``)."""
    return build(ROUTES["remove_document"], path_params={"name": name, "document": document})


def search_kb(
    name: str, query: str, *, k: int | None = None, neighbors: int | None = None
) -> Call[t.SearchResponse]:
    """The ``k`` passages of knowledge base ``name`` that best answer ``query`` (text,
    ``anchor`` ``doc#heading``, score), best first."""
    body = t.SearchRequest(query=query, k=k, neighbors=neighbors)
    return build(ROUTES["search_kb"], path_params={"name": name}, body=body)


# ---------------------------------------------------------------- audit ledger


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def audit_entries(
    *,
    key_id: str | None = None,
    route: str | None = None,
    kind: Literal["request", "admin", "tool"] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    after: int | None = None,
    order: Literal["asc", "desc"] | None = None,
    limit: int | None = None,
    bodies: bool = False,
) -> Call[t.AuditEntryList]:
    """A page of audit-ledger entries (``admin``), newest first unless ``order="asc"``:
    filtered by key (or admin actor), ``route`` (a trailing ``*`` matches a prefix), kind
    and time (``since`` inclusive, ``until`` exclusive); ``after`` is the previous page's
    ``last_seq``. ``bodies`` adds the stored, redacted bodies (400 if the ledger keeps none)."""
    params = {
        "key_id": key_id,
        "route": route,
        "kind": kind,
        "since": _iso(since),
        "until": _iso(until),
        "after": after,
        "order": order,
        "limit": limit,
        "bodies": bodies or None,
    }
    return build(ROUTES["audit_entries"], params=params)


def audit_verify() -> Call[t.VerifyResult]:
    """Re-walk the ledger's chain, Merkle tree and signed checkpoints (``admin``); ``ok``
    false names the first bad entry (``first_bad_seq``)."""
    return build(ROUTES["audit_verify"])


def audit_checkpoints(*, limit: int | None = None) -> Call[t.CheckpointList]:
    """The stored signed checkpoints, newest first (``admin``)."""
    return build(ROUTES["audit_checkpoints"], params={"limit": limit})


def audit_sign_checkpoint() -> Call[t.AuditCheckpoint]:
    """Sign a checkpoint of everything recorded so far, as ``llmeco audit checkpoint --now``
    (``admin``); the latest one when nothing new is uncovered."""
    return build(ROUTES["audit_sign_checkpoint"])


def audit_proof(seq: int) -> Call[t.InclusionProof]:
    """An inclusion proof of entry ``seq`` against the latest signed checkpoint (``admin``;
    404 until one covers it). ``llmeco audit verify --proof FILE`` checks it offline."""
    return build(ROUTES["audit_proof"], path_params={"seq": str(seq)})
