"""Task endpoints: build the app's prompt spec, run it, shape the typed response."""

from __future__ import annotations

from typing import Any

import jsonschema
from starlette.requests import Request

from llmeco.apps import tasks
from llmeco.apps.spec import PromptSpec
from llmeco.errors import GenerateError, InvalidRequest
from llmeco.server import apprun
from llmeco.server.openai.shared import usage
from llmeco.server.state import ServerState, get_context
from llmeco.server.tasks import protocol as p


class TaskServing:
    """Runs each task for one app's state."""

    def __init__(self, state: ServerState, request: Request) -> None:
        self.state = state
        self.request = request

    async def _run(
        self, task: str, model: str | None, spec: PromptSpec
    ) -> tuple[Any, dict[str, Any]]:
        call = await apprun.start(self.state, self.request, model, spec)
        text = await call.text(self.request)
        result = spec.parse(text)
        gen = call.generation
        rid = get_context(self.request).request_id
        meta = {
            "id": f"task-{rid}",
            "object": f"task.{task}",
            "model": call.name,
            "usage": usage(gen.prompt_tokens, gen.completion_tokens),
        }
        return result, meta

    async def translate(self, req: p.TranslateRequest) -> p.TranslateResponse:
        """Translate the text."""
        spec = tasks.translate(req.text, req.target_language, req.source_language, req.max_tokens)
        out, meta = await self._run("translate", req.model, spec)
        return p.TranslateResponse(translation=out, **meta)

    async def summarize(self, req: p.SummarizeRequest) -> p.SummarizeResponse:
        """Summarize the text."""
        spec = tasks.summarize(req.text, req.max_words, req.style, req.max_tokens)
        out, meta = await self._run("summarize", req.model, spec)
        return p.SummarizeResponse(summary=out, **meta)

    async def correct(self, req: p.CorrectRequest) -> p.CorrectResponse:
        """Correct the text."""
        out, meta = await self._run("correct", req.model, tasks.correct(req.text, req.max_tokens))
        return p.CorrectResponse(corrected=out, changed=out != req.text.strip(), **meta)

    async def classify(self, req: p.ClassifyRequest) -> p.LabelResponse:
        """Label the text with one of the given labels."""
        spec = tasks.classify(req.text, req.labels, req.instructions)
        out, meta = await self._run("classify", req.model, spec)
        return p.LabelResponse(label=out, **meta)

    async def sentiment(self, req: p.SentimentRequest) -> p.LabelResponse:
        """Positive, negative or neutral."""
        out, meta = await self._run("sentiment", req.model, tasks.sentiment(req.text))
        return p.LabelResponse(label=out, **meta)

    async def moderate(self, req: p.ModerateRequest) -> p.ModerateResponse:
        """Flags per moderation category."""
        out, meta = await self._run("moderate", req.model, tasks.moderate(req.text))
        flags = {c: bool(out.get(c, False)) for c in tasks.MODERATION_CATEGORIES}
        return p.ModerateResponse(flagged=any(flags.values()), categories=flags, **meta)

    async def extract(self, req: p.ExtractRequest) -> p.ExtractResponse:
        """A record matching the caller's schema."""
        schema = req.json_schema
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise InvalidRequest(
                f"schema is not a valid JSON schema: {exc.message}", param="schema"
            ) from exc
        if schema.get("type") != "object":
            raise InvalidRequest(
                'schema must describe an object ("type": "object")', param="schema"
            )
        spec = tasks.extract(req.text, schema, req.instructions, req.max_tokens)
        out, meta = await self._run("extract", req.model, spec)
        try:
            jsonschema.validate(out, schema)
        except jsonschema.ValidationError as exc:  # constrained decoding makes this a bug
            raise GenerateError(
                f"extracted record does not match the schema: {exc.message}"
            ) from exc
        return p.ExtractResponse(data=out, **meta)
