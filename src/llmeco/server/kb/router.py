"""``/v1/kb``: knowledge bases over HTTP (the same operations as ``llmeco kb``).

Reading and searching need the ``chat`` scope, writing needs ``admin`` (see
``server/plugin.py`` and :mod:`llmeco.governance.scopes`); the logic is in
:mod:`llmeco.server.kb.serving`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile

from llmeco.server.audio.serving import read_upload
from llmeco.server.errors import ERROR_RESPONSES, ErrorResponse
from llmeco.server.kb import protocol as p
from llmeco.server.kb.serving import KbService, service

_RESPONSES: dict[int | str, dict[str, Any]] = {**ERROR_RESPONSES, 403: {"model": ErrorResponse}}

router = APIRouter(prefix="/v1/kb", tags=["knowledge bases"], responses=_RESPONSES)

KbName = Path(min_length=1, max_length=200, description="The knowledge base's name.")


@router.get("", response_model=p.KbList)
async def list_kbs(kbs: KbService = Depends(service)) -> p.KbList:
    """Every knowledge base the calling key may see, with document and chunk counts."""
    return await kbs.list()


@router.post("", status_code=201, response_model=p.KbSummary)
async def create_kb(
    request: Request, body: p.CreateKbRequest, kbs: KbService = Depends(service)
) -> p.KbSummary:
    """Create an empty knowledge base (``admin``)."""
    return await kbs.create(request, body)


@router.get("/{name}", response_model=p.KbDetails)
async def get_kb(name: str = KbName, kbs: KbService = Depends(service)) -> p.KbDetails:
    """One knowledge base with its documents."""
    return await kbs.details(name)


@router.delete("/{name}", response_model=p.KbDeleted)
async def delete_kb(
    request: Request, name: str = KbName, kbs: KbService = Depends(service)
) -> p.KbDeleted:
    """Delete a knowledge base with all its documents (``admin``)."""
    return await kbs.delete(request, name)


@router.post("/{name}/documents", status_code=201, response_model=p.DocumentAdded)
async def upload_document(
    request: Request,
    name: str = KbName,
    file: UploadFile = File(description="A .txt, .md, .html, .pdf or .docx file."),
    document: str | None = Form(
        default=None,
        max_length=500,
        description="Name in the knowledge base (default: the file name), e.g. `guides/setup.md`.",
    ),
    kbs: KbService = Depends(service),
) -> p.DocumentAdded:
    """Add or replace a document from an uploaded file (``admin``): parsed like ``llmeco kb
    add``, all or nothing; an unchanged file is a no-op."""
    data = await read_upload(file)
    return await kbs.add_upload(request, name, file.filename or "", data, document)


@router.post("/{name}/documents/text", status_code=201, response_model=p.DocumentAdded)
async def add_text_document(
    request: Request, body: p.AddTextRequest, name: str = KbName, kbs: KbService = Depends(service)
) -> p.DocumentAdded:
    """Add or replace a document given as Markdown or plain text (``admin``)."""
    return await kbs.add_text(request, name, body)


@router.delete("/{name}/documents/{document:path}", response_model=p.DocumentDeleted)
async def remove_document(
    request: Request,
    name: str = KbName,
    document: str = Path(min_length=1, max_length=500),
    kbs: KbService = Depends(service),
) -> p.DocumentDeleted:
    """Remove one document and its chunks (``admin``)."""
    return await kbs.remove(request, name, document)


@router.post("/{name}/search", response_model=p.SearchResponse)
async def search_kb(
    body: p.SearchRequest, name: str = KbName, kbs: KbService = Depends(service)
) -> p.SearchResponse:
    """The ``k`` passages that best answer ``query`` (BM25 and vectors fused by rank)."""
    return await kbs.search(name, body)
