"""The MCP tools: definitions (name, description, input schema) and implementations over a
:class:`~llmeco.server.state.ServerState`.

Nothing is re-implemented: the task tools call the task endpoints' own
:class:`~llmeco.server.tasks.serving.TaskServing`, ``chat`` runs a prompt through
:func:`llmeco.server.apprun.start` (the generation path of every app endpoint: model
resolution with the key's allow-list, context checks, 429 on a full queue, token charging,
metrics), and knowledge-base search opens knowledge bases through the server's support desk
(its cached indexes). Implementations raise the library's typed errors; turning them into
tool-error results is :mod:`llmeco.server.mcp.server`'s job.

Knowledge bases are governed like the support models they back (``support:<kb>``): a key
with a model allow-list sees and searches only the knowledge bases it lists that way.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import anyio
import mcp_types as types
from pydantic import BaseModel, ValidationError

from llmeco.apps.spec import PromptSpec
from llmeco.apps.support.desk import PREFIX as SUPPORT_PREFIX
from llmeco.apps.support.desk import SupportDesk
from llmeco.engine.request import SamplingParams
from llmeco.errors import EngineDead, InvalidRequest, NotFound
from llmeco.rag.kb import KbInfo, list_knowledge_bases
from llmeco.server import apprun
from llmeco.server.errors import param_name
from llmeco.server.mcp.caller import Caller
from llmeco.server.mcp.schemas import ChatArgs, NoArgs, SearchArgs, input_schema
from llmeco.server.openai.shared import usage
from llmeco.server.state import ServerState
from llmeco.server.tasks import protocol as p
from llmeco.server.tasks.serving import TaskServing


@dataclass(frozen=True)
class ToolOutput:
    """A tool's result: JSON data, and the text an LLM reads (default: the data as JSON)."""

    data: dict[str, Any]
    text: str | None = None

    def as_text(self) -> str:
        """The text content of the result."""
        if self.text is not None:
            return self.text
        return json.dumps(self.data, ensure_ascii=False, indent=1)


#: Which model names a tool's ``model`` argument may take.
ModelKind = Literal["none", "generation", "labels"]
Run = Callable[["McpTools", Any, Caller], Awaitable[ToolOutput]]


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its arguments model, how it runs, and what it needs from the server."""

    name: str
    title: str
    description: str
    args: type[BaseModel]
    run: Run
    #: ``knowledge``: needs the support desk; ``generation``: needs a served model.
    needs: Literal["knowledge", "generation"]
    models: ModelKind = "none"
    idempotent: bool = False
    #: Replacement descriptions of properties (what the HTTP docs say is HTTP-specific).
    describe: dict[str, str] = field(default_factory=dict)


class McpTools:
    """The tools one server offers, run against its state."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.specs: dict[str, ToolSpec] = {spec.name: spec for spec in SPECS}

    # ---- definitions ------------------------------------------------------------------------

    async def definitions(self) -> list[types.Tool]:
        """The tools this server can serve now, as the current caller may use them (run under
        the caller's guard: model and knowledge-base lists are filtered by its allow-list)."""
        state = self.state
        kbs = await self._visible_kbs() if state.support is not None else None
        generation = self._generation_models()
        classifiers = [n for n in state.classifiers if state.visible(n)]
        tools = []
        for spec in SPECS:
            if spec.needs == "knowledge" and kbs is None:
                continue
            if spec.needs == "generation" and not state.engines:
                continue
            models = [*generation, *classifiers] if spec.models == "labels" else generation
            description = spec.description
            enums: dict[str, list[str]] = {}
            describe = dict(spec.describe)
            if spec.models != "none":
                enums["model"] = models
                default = next(iter(state.engines))
                describe["model"] = (
                    describe.get("model", "Served model to use")
                    + f"; default: {default}. One of: {', '.join(models) or 'none you may use'}."
                )
            if spec.name == "search_knowledge_base" and kbs is not None:
                enums["kb"] = [kb.name for kb in kbs]
                description += " Knowledge bases: " + _kb_summary(kbs) + "."
            schema = input_schema(spec.args, enums=enums, describe=describe)
            if spec.name == "classify":  # what ClassifyRequest's validator enforces
                schema["properties"]["labels"]["items"] = {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 100,
                }
                schema["properties"]["labels"]["uniqueItems"] = True
            tools.append(
                types.Tool(
                    name=spec.name,
                    title=spec.title,
                    description=description,
                    input_schema=schema,
                    annotations=types.ToolAnnotations(
                        title=spec.title,
                        read_only_hint=True,
                        destructive_hint=False,
                        idempotent_hint=spec.idempotent,
                        open_world_hint=False,
                    ),
                )
            )
        return tools

    def _generation_models(self) -> list[str]:
        """Served generation models (and their aliases) the caller may use."""
        state = self.state
        names = [*state.engines, *state.aliases]
        return [n for n in names if state.visible(state.aliases.get(n, n))]

    async def _visible_kbs(self) -> list[KbInfo]:
        """The knowledge bases the caller may see (``support:<kb>`` in its allow-list)."""
        desk = _desk(self.state)
        infos = await anyio.to_thread.run_sync(list_knowledge_bases, desk.store)
        return [i for i in infos if self.state.visible(SUPPORT_PREFIX + i.name)]

    # ---- calls ------------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any], caller: Caller) -> ToolOutput:
        """Validate ``arguments`` and run tool ``name`` (under the caller's guard).

        Raises:
            NotFound: there is no such tool.
            InvalidRequest: the arguments do not fit the tool's schema (the message names
                each bad field).
            LlmecoError: whatever the tool's serving code raises (403, 404, 429, 503 …).
        """
        spec = self.specs.get(name)
        if spec is None:
            raise NotFound(
                f"there is no tool named {name!r}; the tools are {', '.join(self.specs)}",
                param="name",
            )
        try:
            args = spec.args.model_validate(arguments)
        except ValidationError as exc:
            raise InvalidRequest(f"bad arguments for {name}: {_problems(exc)}") from None
        return await spec.run(self, args, caller)

    async def list_kbs(self, _: NoArgs, caller: Caller) -> ToolOutput:
        """The knowledge bases the caller may search."""
        kbs = await self._visible_kbs()
        return ToolOutput(
            {
                "knowledge_bases": [
                    {"name": kb.name, "documents": kb.documents, "chunks": kb.chunks} for kb in kbs
                ]
            }
        )

    async def search_kb(self, args: SearchArgs, caller: Caller) -> ToolOutput:
        """The passages of a knowledge base that best answer a query."""
        state = self.state
        desk = _desk(state)
        if state.draining:
            raise EngineDead("the server is shutting down; retry on another replica")
        state.check_model(SUPPORT_PREFIX + args.kb)  # 403 before 404: no existence leak
        try:
            kb = await anyio.to_thread.run_sync(desk.knowledge_base, args.kb)
        except NotFound:
            known = [kb.name for kb in await self._visible_kbs()]
            raise NotFound(
                f"there is no knowledge base named {args.kb!r}; available: "
                f"{', '.join(known) or 'none'}",
                param="kb",
            ) from None
        hits = await anyio.to_thread.run_sync(partial(kb.search, args.query, args.k))
        passages = [
            {
                "rank": rank,
                "doc": hit.doc,
                "section": hit.section,
                "anchor": hit.anchor,
                "start": hit.start,
                "end": hit.end,
                "score": hit.score,
                "similarity": hit.similarity,
                "text": hit.text,
            }
            for rank, hit in enumerate(hits, start=1)
        ]
        return ToolOutput({"kb": args.kb, "query": args.query, "passages": passages})

    async def chat(self, args: ChatArgs, caller: Caller) -> ToolOutput:
        """One chat completion through the apps' generation path."""
        params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature)
        request = caller.request
        call = await apprun.start(
            self.state, request, args.model, PromptSpec(args.conversation(), params)
        )
        gen = call.generation
        try:
            (choice,) = await gen.collect(request)
        finally:
            await gen.close()
        text = "".join(choice.text)
        data = {
            "model": call.name,
            "text": text,
            "finish_reason": choice.finish_reason,
            "usage": usage(gen.prompt_tokens, gen.completion_tokens).model_dump(),
        }
        return ToolOutput(data, text=text)


def _task(
    method: Callable[[TaskServing, Any], Awaitable[BaseModel]],
) -> Run:
    """A tool that runs one task endpoint's serving method on its validated request."""

    async def run(tools: McpTools, req: Any, caller: Caller) -> ToolOutput:
        response = await method(TaskServing(tools.state, caller.request), req)
        return ToolOutput(response.model_dump(mode="json", by_alias=True))

    return run


def _desk(state: ServerState) -> SupportDesk:
    if state.support is None:
        raise NotFound(
            "knowledge-base search is not enabled on this server (it needs the project store "
            "and the embedding model: serve without --no-embeddings)",
            param="kb",
        )
    return state.support


def _kb_summary(kbs: list[KbInfo]) -> str:
    if not kbs:
        return "none yet (create one with `llmeco kb create NAME`)"
    return ", ".join(
        f"{kb.name} ({kb.documents} document{'' if kb.documents == 1 else 's'})" for kb in kbs
    )


def _problems(exc: ValidationError) -> str:
    """Each validation error as ``field: message``."""
    out = []
    for err in exc.errors():
        where = param_name(err.get("loc", ()))
        out.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return "; ".join(out)


_TEXT = "The text to work on (up to 32,000 characters)."
_TASK_MODEL = "Served chat model that does the task"
_LABEL_MODEL = (
    "Served chat model (prompted with the labels) or trained classifier (brings its own labels "
    "and per-label probabilities)"
)

SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="list_knowledge_bases",
        title="List knowledge bases",
        description="List the team's knowledge bases (document collections) that "
        "search_knowledge_base can search, with their document and passage counts.",
        args=NoArgs,
        run=McpTools.list_kbs,
        needs="knowledge",
        idempotent=True,
    ),
    ToolSpec(
        name="search_knowledge_base",
        title="Search a knowledge base",
        description="Find the passages of one of the team's knowledge bases that best answer a "
        "question (hybrid keyword + semantic search). Returns up to k passages, best first, "
        "each with its document, section heading path, character span in the document "
        "(start, end), fused rank score and cosine similarity to the query (below about 0.3 "
        "the passage is probably unrelated). Quote or cite passages by doc and section.",
        args=SearchArgs,
        run=McpTools.search_kb,
        needs="knowledge",
        idempotent=True,
    ),
    ToolSpec(
        name="chat",
        title="Chat with a model",
        description="Ask one of the team's self-hosted language models: send a prompt (or a "
        "whole conversation as messages) and get its reply as text. Small local models: "
        "keep requests short and specific.",
        args=ChatArgs,
        run=McpTools.chat,
        needs="generation",
        models="generation",
        describe={"model": "Served model to use"},
    ),
    ToolSpec(
        name="classify",
        title="Classify text",
        description="Label a text with exactly one of the given labels (e.g. route a support "
        "ticket). With a trained classifier as model, labels may be left out and the result "
        "carries each label's probability in scores.",
        args=p.ClassifyRequest,
        run=_task(TaskServing.classify),
        needs="generation",
        models="labels",
        describe={
            "model": _LABEL_MODEL,
            "text": _TEXT,
            "labels": "2 to 50 distinct labels to choose from; required unless model is a "
            "trained classifier.",
        },
    ),
    ToolSpec(
        name="sentiment",
        title="Sentiment of text",
        description="Judge the writer's feeling in a text: positive, negative or neutral.",
        args=p.SentimentRequest,
        run=_task(TaskServing.sentiment),
        needs="generation",
        models="labels",
        describe={"model": _LABEL_MODEL, "text": _TEXT},
    ),
    ToolSpec(
        name="summarize",
        title="Summarize text",
        description="Summarize a text as a paragraph or as bullet points, within max_words.",
        args=p.SummarizeRequest,
        run=_task(TaskServing.summarize),
        needs="generation",
        models="generation",
        describe={"model": _TASK_MODEL, "text": _TEXT},
    ),
    ToolSpec(
        name="translate",
        title="Translate text",
        description="Translate a text into target_language (e.g. French); the source language "
        "is detected unless given.",
        args=p.TranslateRequest,
        run=_task(TaskServing.translate),
        needs="generation",
        models="generation",
        describe={"model": _TASK_MODEL, "text": _TEXT},
    ),
    ToolSpec(
        name="correct",
        title="Correct spelling and grammar",
        description="Fix the spelling and grammar of a text, keeping its meaning; says whether "
        "anything changed.",
        args=p.CorrectRequest,
        run=_task(TaskServing.correct),
        needs="generation",
        models="generation",
        describe={"model": _TASK_MODEL, "text": _TEXT},
    ),
    ToolSpec(
        name="moderate",
        title="Moderate text",
        description="Check a text for hate, harassment, self-harm, sexual content, violence and "
        "illicit activity: a true/false flag per category, and flagged if any is true.",
        args=p.ModerateRequest,
        run=_task(TaskServing.moderate),
        needs="generation",
        models="generation",
        describe={"model": _TASK_MODEL, "text": _TEXT},
    ),
    ToolSpec(
        name="extract",
        title="Extract a record",
        description="Extract a JSON record from a text. Give the record's JSON schema (an object "
        "schema); the result's data always validates against it (constrained decoding). "
        "Values are copied from the text, never made up.",
        args=p.ExtractRequest,
        run=_task(TaskServing.extract),
        needs="generation",
        models="generation",
        describe={"model": _TASK_MODEL, "text": _TEXT},
    ),
)
