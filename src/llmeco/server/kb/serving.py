"""What the ``/v1/kb`` routes do, over the public API of :mod:`llmeco.rag.kb`.

The store is the support desk's (``llmeco serve`` opens it with the embedding model), the
embedder is the server's own (``ServerState.embedder``): a server started without one has
no knowledge bases here (404, saying why). Parsing and embedding run in worker threads, off
the event loop.

Knowledge bases are governed like the support models they back (``support:<kb>``, as on
``/mcp``): a key with a model allow-list sees, reads and searches only the knowledge bases
it lists that way (403 before 404, so a name's existence does not leak). Writes need the
``admin`` scope (checked by the auth middleware) and are appended to the audit ledger as
admin actions (``kb.create``, ``kb.add``, ``kb.remove``, ``kb.delete``) when the server has
one.

Uploads are parsed exactly as ``llmeco kb add`` reads files (.txt .md .html .pdf .docx) from
a private temporary directory under a fixed name: the client's file name only names the
document, and a name that could walk out of a folder (``..``, an absolute path, a
backslash, control characters) is refused. Adding is all-or-nothing (the library writes a
document in one transaction), so a file that fails to parse leaves the knowledge base as it
was and the 400 names the file.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from datetime import datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
from starlette.requests import Request

from llmeco.apps.support.calibration import GateStore
from llmeco.apps.support.desk import PREFIX as SUPPORT_PREFIX
from llmeco.errors import ConfigError, InvalidRequest, NotFound
from llmeco.rag.kb import KnowledgeBase, list_knowledge_bases
from llmeco.rag.parse import SUFFIXES, read_document
from llmeco.rag.retrieve import Hit
from llmeco.server.auth import current_key
from llmeco.server.kb import protocol as p
from llmeco.server.state import ServerState
from llmeco.store import Store

_MAX_DOC_NAME = 500


def _ts(value: datetime) -> int:
    return int(value.timestamp())


def doc_name(name: str, param: str = "name") -> str:
    """A document name a client gave, checked: a relative POSIX path (``guides/setup.md``)
    with no ``..``/``.`` parts, no absolute path, backslash or control character.

    Raises:
        InvalidRequest: the name is empty, too long, or could escape a folder.
    """
    clean = name.strip()
    parts = PurePosixPath(clean).parts
    bad = (
        not clean
        or len(clean) > _MAX_DOC_NAME
        or clean.startswith("/")
        or "\\" in clean
        or any(ord(c) < 32 or ord(c) == 127 for c in clean)
        or any(part in (".", "..") for part in parts)
        or any(part in (".", "..", "") for part in clean.split("/"))
    )
    if bad:
        raise InvalidRequest(
            f"bad document name {name!r}: use a relative name like `faq.md` or "
            "`guides/setup.md` (no `..`, no leading `/`, no backslash or control characters)",
            param=param,
        )
    return clean


class KbService:
    """The knowledge bases of one app: opened ones cached (their vector index stays loaded)."""

    def __init__(self, state: ServerState) -> None:
        """Bind to the app's state; the store and embedder are read on each call."""
        self.state = state
        self._kbs: dict[str, KnowledgeBase] = {}
        self._lock = threading.Lock()

    # ---- access -----------------------------------------------------------------------------

    def store(self) -> Store:
        """The store knowledge bases live in; 404 when this server has none."""
        desk = self.state.support
        if desk is None or self.state.embedder is None:
            raise NotFound(
                "this server has no knowledge bases: it was started without an embedding "
                "model (start `llmeco serve` with embeddings on to manage them over HTTP)"
            )
        return desk.store

    def check(self, name: str) -> None:
        """403 unless the calling key may use ``support:<name>`` (its model allow-list)."""
        self.state.check_model(SUPPORT_PREFIX + name)

    def _open(self, name: str) -> KnowledgeBase:
        """The knowledge base ``name``: the support desk's open one (sharing its loaded
        vector index) while it is still the same row, else one cached here."""
        store = self.store()
        fresh = KnowledgeBase.open(store, name, self.state.embedder)
        desk = self.state.support
        shared = desk.knowledge_base(name) if desk is not None else None
        same = (fresh.id, fresh.created_at)  # a re-created KB may get the old row id back
        if shared is not None and (shared.id, shared.created_at) == same:
            return shared
        with self._lock:
            cached = self._kbs.get(name)
            if cached is not None and (cached.id, cached.created_at) == same:
                return cached
            self._kbs[name] = fresh
            return fresh

    async def open(self, name: str) -> KnowledgeBase:
        """The knowledge base ``name`` the caller may use (403, then 404 listing the ones
        the caller may see)."""
        self.check(name)
        self.store()  # 404 (no knowledge bases here) before looking for this one
        try:
            return await anyio.to_thread.run_sync(self._open, name)
        except NotFound:
            known = ", ".join(kb.name for kb in (await self.list()).data) or "none"
            raise NotFound(
                f"there is no knowledge base named {name!r} (known: {known}; create one "
                "with POST /v1/kb)",
                param="name",
            ) from None

    # ---- reading ----------------------------------------------------------------------------

    async def list(self) -> p.KbList:
        """Every knowledge base the caller may see, with document and chunk counts."""
        store = self.store()
        infos = await anyio.to_thread.run_sync(list_knowledge_bases, store)
        return p.KbList(
            data=[
                p.KbSummary(
                    name=i.name,
                    embed_model=i.embed_model,
                    documents=i.documents,
                    chunks=i.chunks,
                    created_at=_ts(i.created_at),
                )
                for i in infos
                if self.state.visible(SUPPORT_PREFIX + i.name)
            ]
        )

    async def details(self, name: str) -> p.KbDetails:
        """One knowledge base with its documents."""
        kb = await self.open(name)
        docs = await anyio.to_thread.run_sync(kb.documents)
        infos = {i.name: i for i in await anyio.to_thread.run_sync(list_knowledge_bases, kb.store)}
        info = infos.get(name)
        if info is None:
            raise NotFound(f"knowledge base {name!r} was deleted")
        return p.KbDetails(
            name=info.name,
            embed_model=info.embed_model,
            documents=info.documents,
            chunks=info.chunks,
            created_at=_ts(info.created_at),
            document_list=[
                p.DocumentInfo(
                    name=d.name,
                    source=d.source,
                    chunks=d.chunks,
                    content_hash=d.content_hash,
                    added_at=_ts(d.added_at),
                )
                for d in docs
            ],
        )

    async def search(self, name: str, body: p.SearchRequest) -> p.SearchResponse:
        """The passages of ``name`` that best answer the query (embedding in a thread)."""
        kb = await self.open(name)
        hits = await anyio.to_thread.run_sync(
            partial(kb.search, body.query, body.k, neighbors=body.neighbors)
        )
        return p.SearchResponse(
            kb=name, query=body.query, data=[_hit(i, h) for i, h in enumerate(hits, start=1)]
        )

    # ---- writing (admin) --------------------------------------------------------------------

    async def create(self, request: Request, body: p.CreateKbRequest) -> p.KbSummary:
        """Create an empty knowledge base (400 when the name is bad or taken)."""
        store = self.store()
        self.check(body.name.strip())
        kb = await anyio.to_thread.run_sync(
            partial(KnowledgeBase.create, store, body.name, self.state.embedder)
        )
        await self._audit(request, "kb.create", {"kb": kb.name, "embed_model": kb.embed_model})
        infos = {i.name: i for i in await anyio.to_thread.run_sync(list_knowledge_bases, store)}
        info = infos[kb.name]
        return p.KbSummary(
            name=info.name,
            embed_model=info.embed_model,
            documents=info.documents,
            chunks=info.chunks,
            created_at=_ts(info.created_at),
        )

    async def add_upload(
        self, request: Request, name: str, filename: str, data: bytes, doc: str | None
    ) -> p.DocumentAdded:
        """Parse, chunk, embed and store one uploaded file (all or nothing)."""
        kb = await self.open(name)
        shown = doc_name(filename or "", param="file")
        document = doc_name(doc, param="document") if doc else shown
        suffix = PurePosixPath(shown).suffix.lower()
        if suffix not in SUFFIXES:
            raise InvalidRequest(
                f"{shown}: unsupported format {suffix or '(no suffix)'!r}; knowledge bases "
                f"read {', '.join(sorted(SUFFIXES))}",
                param="file",
            )
        result = await anyio.to_thread.run_sync(
            partial(_add_bytes, kb, data, suffix, document, shown)
        )
        await self._audit(
            request,
            "kb.add",
            {"kb": name, "document": document, "status": result.status, "file": shown},
        )
        return _added(name, result)

    async def add_text(
        self, request: Request, name: str, body: p.AddTextRequest
    ) -> p.DocumentAdded:
        """Add (or replace) a document given as Markdown/plain text."""
        kb = await self.open(name)
        document = doc_name(body.name)
        if not body.text.strip():
            raise InvalidRequest("the text is empty", param="text")
        try:
            result = await anyio.to_thread.run_sync(
                partial(kb.add_text, document, body.text, source=f"text:{document}")
            )
        except ConfigError as exc:
            raise InvalidRequest(f"{document}: {exc.message}", param="text") from None
        await self._audit(
            request, "kb.add", {"kb": name, "document": document, "status": result.status}
        )
        return _added(name, result)

    async def remove(self, request: Request, name: str, document: str) -> p.DocumentDeleted:
        """Remove one document and its chunks (404 when there is no such document)."""
        kb = await self.open(name)
        chunks = await anyio.to_thread.run_sync(kb.remove, document)
        await self._audit(request, "kb.remove", {"kb": name, "document": document})
        return p.DocumentDeleted(kb=name, document=document, chunks=chunks)

    async def delete(self, request: Request, name: str) -> p.KbDeleted:
        """Delete a knowledge base with all its documents."""
        kb = await self.open(name)
        infos = {i.name: i for i in await anyio.to_thread.run_sync(list_knowledge_bases, kb.store)}
        info = infos.get(name)
        await anyio.to_thread.run_sync(kb.drop)
        # as `llmeco kb delete`: a KB made later under this name starts with the default gate
        await anyio.to_thread.run_sync(GateStore(kb.store).delete, name)
        with self._lock:
            self._kbs.pop(name, None)
        documents = info.documents if info else 0
        chunks = info.chunks if info else 0
        await self._audit(
            request, "kb.delete", {"kb": name, "documents": documents, "chunks": chunks}
        )
        return p.KbDeleted(name=name, documents=documents, chunks=chunks)

    async def _audit(self, request: Request, action: str, details: dict[str, Any]) -> None:
        """Append a write to the audit ledger as an admin action (when there is one)."""
        ledger = self.state.ledger
        if ledger is None:
            return
        key = current_key(request)
        await ledger.arecord_admin(key.id if key is not None else "anonymous", action, details)


def _hit(rank: int, hit: Hit) -> p.SearchHit:
    return p.SearchHit(
        rank=rank,
        doc=hit.doc,
        section=hit.section,
        anchor=hit.anchor,
        start=hit.start,
        end=hit.end,
        text=hit.text,
        context=hit.context,
        score=hit.score,
        similarity=hit.similarity,
    )


def _added(kb: str, result: Any) -> p.DocumentAdded:
    return p.DocumentAdded(
        kb=kb,
        document=result.doc,
        status=result.status,
        chunks=result.chunks,
        embedded=result.embedded,
    )


def _add_bytes(kb: KnowledgeBase, data: bytes, suffix: str, document: str, shown: str) -> Any:
    """Parse the upload from a private temporary file (a fixed name: the client's name is
    never a path here) and add it; a parse error becomes a 400 naming the upload."""
    with tempfile.TemporaryDirectory(prefix="llmeco-kb-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            parsed = read_document(path, document)
        except ConfigError as exc:
            message = exc.message.replace(str(path), shown)
            raise InvalidRequest(message, param="file") from None
    parsed = dataclasses.replace(parsed, source=f"upload:{shown}")
    try:
        return kb.add_document(parsed)
    except ConfigError as exc:
        raise InvalidRequest(exc.message.replace(f"upload:{shown}", shown), param="file") from None


def service(request: Request) -> KbService:
    """The app's :class:`KbService` (made on first use; a FastAPI dependency)."""
    app_state = request.app.state
    svc: KbService | None = getattr(app_state, "llmeco_kb", None)
    if svc is None:
        svc = KbService(request.app.state.llmeco)
        app_state.llmeco_kb = svc
    return svc
