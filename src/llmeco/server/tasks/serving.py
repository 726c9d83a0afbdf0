"""Task endpoints: build the app's prompt spec, run it, shape the typed response.

Classify and sentiment requests whose ``model`` names a trained classifier
(:mod:`llmeco.apps.classifier`) skip the prompt: the classifier's worker thread labels the
text, with the same checks a generation gets (shutdown, the key's model allow-list, token
limits) and the same response schema plus per-label ``scores``.
"""

from __future__ import annotations

from typing import Any

import anyio
import jsonschema
from starlette.requests import Request

from llmeco.apps import tasks
from llmeco.apps.classifier import ServedClassifier, restrict
from llmeco.apps.spec import PromptSpec
from llmeco.errors import EngineDead, GenerateError, InvalidRequest, NotFound
from llmeco.server import apprun
from llmeco.server.openai.shared import usage
from llmeco.server.state import ServerState, get_context, request_guard
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

    def _classifier(self, model: str | None) -> ServedClassifier | None:
        """The trained classifier ``model`` names; None for a chat model (or none given).

        Raises:
            NotFound: ``model`` names nothing this server serves (the message lists both the
                models and the classifiers the caller may use).
        """
        if model is None:
            return None
        state = self.state
        found = state.classifiers.get(model)
        if found is not None:
            return found
        if state.aliases.get(model, model) in state.engines or model in state.embedder_names():
            return None  # a served model: the prompted path resolves (and checks) it
        names = [n for n in state.classifiers if state.visible(n)]
        raise NotFound(
            f"The model `{model}` does not exist. Available models: {state.available()}; "
            f"trained classifiers: {', '.join(names) or 'none'}.",
            param="model",
        )

    async def _predict(
        self, task: str, classifier: ServedClassifier, text: str, labels: list[str] | None
    ) -> p.LabelResponse:
        """Label ``text`` with a trained classifier (restricted to ``labels`` when given)."""
        state = self.state
        if state.draining:
            raise EngineDead("the server is shutting down; retry on another replica")
        state.check_model(classifier.name)  # 403 for a key whose allow-list lacks it
        ctx = get_context(self.request)
        ctx.model = classifier.name
        if labels is not None:
            unknown = [label for label in labels if label not in classifier.labels]
            if unknown:
                raise InvalidRequest(
                    f"classifier {classifier.name} cannot produce label(s) {', '.join(unknown)}; "
                    f"its labels are {', '.join(classifier.labels)}. Leave labels out to use "
                    "them all, or pass a subset of them.",
                    param="labels",
                )
        tokens = (await anyio.to_thread.run_sync(classifier.token_counts, [text]))[0]
        guard = request_guard.get()
        if guard is not None:  # charge the key first (429 when over a limit)
            await guard.reserve(tokens, room=0)
        try:
            (prediction,) = await classifier.predict([text])
        except Exception:
            if guard is not None:
                await guard.refund(tokens)
            raise
        state.metrics.prompt_tokens.labels(classifier.name).inc(tokens)
        prediction = restrict(prediction, labels)
        return p.LabelResponse(
            id=f"task-{ctx.request_id}",
            object=f"task.{task}",
            model=classifier.name,
            usage=usage(tokens, 0),
            label=prediction.label,
            scores=prediction.scores,
        )

    async def classify(self, req: p.ClassifyRequest) -> p.LabelResponse:
        """Label the text with one of the given labels (or of the named classifier's)."""
        classifier = self._classifier(req.model)
        if classifier is not None:
            return await self._predict("classify", classifier, req.text, req.labels)
        if req.labels is None:
            raise InvalidRequest(
                "labels is required when a chat model classifies (only a trained classifier, "
                "named in model, brings its own labels)",
                param="labels",
            )
        spec = tasks.classify(req.text, req.labels, req.instructions)
        out, meta = await self._run("classify", req.model, spec)
        return p.LabelResponse(label=out, **meta)

    async def sentiment(self, req: p.SentimentRequest) -> p.LabelResponse:
        """Positive, negative or neutral."""
        classifier = self._classifier(req.model)
        if classifier is not None:
            others = [label for label in classifier.labels if label not in tasks.SENTIMENTS]
            if others:
                raise InvalidRequest(
                    f"classifier {classifier.name} is not a sentiment classifier: its labels "
                    f"{', '.join(others)} are not among {', '.join(tasks.SENTIMENTS)}; use "
                    "/v1/tasks/classify",
                    param="model",
                )
            return await self._predict("sentiment", classifier, req.text, None)
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
