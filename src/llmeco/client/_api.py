"""Every client method, written once: its route and how its request is built.

Each function here takes the method's arguments and returns a :class:`~._core.Call`; the
sync and async clients expose the same functions as methods (``_client.Endpoint``), so a
signature, docstring or body is never written twice. :data:`ROUTES` is the table the
OpenAPI drift test checks against the server.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import IO, Any, Final, Literal

from llmeco.client import types as t
from llmeco.client._api_kb import ROUTES as _KB_AUDIT_ROUTES
from llmeco.client._core import Call, Route, build, dump
from llmeco.errors import InvalidRequest


class _Unset:
    """Marks an argument left out (where None has a meaning of its own)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


#: Default of arguments for which None means "remove" (``update_key``'s limits).
NOT_GIVEN: Final = _Unset()

_POST, _GET = "POST", "GET"

#: Method name → the route it calls. Tasks and write change nothing on the server, so a
#: request that broke mid-way may be repeated (``idempotent=True``).
ROUTES: dict[str, Route] = {
    # admin: keys
    "create_key": Route(_POST, "/admin/keys", t.CreatedKey, (t.CreateKeyRequest,)),
    "list_keys": Route(_GET, "/admin/keys", t.KeyList, query=("include_revoked",)),
    "get_key": Route(_GET, "/admin/keys/{key_id}", t.KeyInfo),
    "update_key": Route("PATCH", "/admin/keys/{key_id}", t.KeyInfo, (t.UpdateLimitsRequest,)),
    "revoke_key": Route("DELETE", "/admin/keys/{key_id}", t.KeyInfo),
    # usage
    "admin_usage": Route(_GET, "/admin/usage", t.UsageList, query=("key_id", "day")),
    "usage": Route(_GET, "/v1/usage", t.KeyUsage, query=("day",)),
    # admin: aliases, models, sessions, hand-offs
    "list_aliases": Route(_GET, "/admin/aliases", list[t.AliasInfo]),
    "set_alias": Route("PUT", "/admin/aliases/{alias}", t.AliasInfo, (t.AliasRequest,)),
    "list_served_models": Route(_GET, "/admin/models", list[t.ServedModel]),
    "reload_model": Route(_POST, "/admin/models/{name}/reload", t.SwapResult, query=("force",)),
    "forget_session": Route("DELETE", "/admin/sessions/{session_id}", t.ForgetResult),
    "list_handoffs": Route(_GET, "/admin/handoffs", t.HandoffList, query=("kb", "limit")),
    # tasks
    "translate": Route(
        _POST, "/v1/tasks/translate", t.TranslateResponse, (t.TranslateRequest,), idempotent=True
    ),
    "summarize": Route(
        _POST, "/v1/tasks/summarize", t.SummarizeResponse, (t.SummarizeRequest,), idempotent=True
    ),
    "correct": Route(
        _POST, "/v1/tasks/correct", t.CorrectResponse, (t.CorrectRequest,), idempotent=True
    ),
    "classify": Route(
        _POST, "/v1/tasks/classify", t.LabelResponse, (t.ClassifyRequest,), idempotent=True
    ),
    "sentiment": Route(
        _POST, "/v1/tasks/sentiment", t.LabelResponse, (t.SentimentRequest,), idempotent=True
    ),
    "moderate": Route(
        _POST, "/v1/tasks/moderate", t.ModerateResponse, (t.ModerateRequest,), idempotent=True
    ),
    "extract": Route(
        _POST, "/v1/tasks/extract", t.ExtractResponse, (t.ExtractRequest,), idempotent=True
    ),
    # built-in apps
    "write": Route(
        _POST,
        "/v1/apps/write/{action}",
        t.WriteResponse,
        (t.WriteRequest,),
        idempotent=True,
        omits=("stream",),  # server-sent events: not supported by this client (yet)
    ),
    "feedback": Route(_POST, "/v1/feedback", t.FeedbackResponse, (t.FeedbackRequest,)),
    "voice": Route(_POST, "/v1/apps/voice/{kb}", t.VoiceAnswer, (t.VoiceForm,), multipart=True),
    # tokenizer (vLLM's shapes)
    "tokenize": Route(
        _POST,
        "/tokenize",
        t.TokenizeResponse,
        (t.TokenizeCompletionRequest, t.TokenizeChatRequest),
        idempotent=True,
    ),
    "detokenize": Route(
        _POST, "/detokenize", t.DetokenizeResponse, (t.DetokenizeRequest,), idempotent=True
    ),
    # operations
    "health": Route(_GET, "/health", t.Health),
    "ready": Route(_GET, "/ready", t.Readiness, retry=False),
    # knowledge bases and the audit ledger (methods in ._api_kb)
    **_KB_AUDIT_ROUTES,
}


# ---------------------------------------------------------------- admin: keys


def create_key(
    name: str,
    scopes: list[str],
    *,
    models: list[str] | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    daily_tokens: int | None = None,
    expires_in: str | None = None,
) -> Call[t.CreatedKey]:
    """Create an API key holding at most what the calling key holds (``admin`` scope).

    ``scopes``: chat, completions, embeddings, audio, models, admin; ``models`` an allow-list
    (None: all); limits None: none; ``expires_in`` like ``30d``, ``12h``. The secret
    (``.key``) is shown only in this answer.
    """
    body = t.CreateKeyRequest(
        name=name,
        scopes=scopes,
        models=models,
        rpm=rpm,
        tpm=tpm,
        daily_tokens=daily_tokens,
        expires_in=expires_in,
    )
    return build(ROUTES["create_key"], body=body)


def list_keys(*, include_revoked: bool = False) -> Call[t.KeyList]:
    """The keys the calling key may manage: itself and every key it dominates."""
    return build(ROUTES["list_keys"], params={"include_revoked": include_revoked or None})


def get_key(key_id: str) -> Call[t.KeyInfo]:
    """One key the calling key may manage (404 for an unknown id)."""
    return build(ROUTES["get_key"], path_params={"key_id": key_id})


def update_key(
    key_id: str,
    *,
    rpm: int | _Unset | None = NOT_GIVEN,
    tpm: int | _Unset | None = NOT_GIVEN,
    daily_tokens: int | _Unset | None = NOT_GIVEN,
) -> Call[t.KeyInfo]:
    """Change a key's limits, never beyond the caller's own: a limit left out keeps its
    value, None removes it."""
    given = {"rpm": rpm, "tpm": tpm, "daily_tokens": daily_tokens}
    limits = {k: v for k, v in given.items() if not isinstance(v, _Unset)}
    body = t.UpdateLimitsRequest(**limits)
    return build(
        ROUTES["update_key"],
        path_params={"key_id": key_id},
        json=body.model_dump(mode="json", exclude_unset=True),
    )


def revoke_key(key_id: str) -> Call[t.KeyInfo]:
    """Revoke a key the caller dominates; it stops working at once on this server."""
    return build(ROUTES["revoke_key"], path_params={"key_id": key_id})


# ---------------------------------------------------------------- usage


def admin_usage(*, key_id: str | None = None, day: str | None = None) -> Call[t.UsageList]:
    """Token and request usage per visible key (or of ``key_id``) on UTC ``day``
    (``YYYY-MM-DD``, default today): the counters the limits enforce."""
    return build(ROUTES["admin_usage"], params={"key_id": key_id, "day": day})


def usage(*, day: str | None = None) -> Call[t.KeyUsage]:
    """The calling key's own usage and remaining daily budget (any valid key)."""
    return build(ROUTES["usage"], params={"day": day})


# ---------------------------------------------------------------- admin: serving


def list_aliases() -> Call[list[t.AliasInfo]]:
    """The server's serving aliases (extra names for served models)."""
    return build(ROUTES["list_aliases"])


def set_alias(alias: str, model: str) -> Call[t.AliasInfo]:
    """Point serving alias ``alias`` at served model ``model``."""
    return build(
        ROUTES["set_alias"], path_params={"alias": alias}, body=t.AliasRequest(model=model)
    )


def list_served_models() -> Call[list[t.ServedModel]]:
    """Each served model's reference, the registry alias it follows and its live version
    (servers started with hot-swappable slots; others answer 400)."""
    return build(ROUTES["list_served_models"])


def reload_model(name: str, *, force: bool = False) -> Call[t.SwapResult]:
    """Re-resolve a served model's reference and hot-swap to it if it changed (``force``:
    load it again even if current); answers when the swap is done."""
    return build(
        ROUTES["reload_model"], path_params={"name": name}, params={"force": force or None}
    )


def forget_session(session_id: str) -> Call[t.ForgetResult]:
    """Erase every stored record of a support session (404 when nothing is stored)."""
    return build(ROUTES["forget_session"], path_params={"session_id": session_id})


def list_handoffs(*, kb: str | None = None, limit: int | None = None) -> Call[t.HandoffList]:
    """Questions the support assistant passed to a person, newest first."""
    return build(ROUTES["list_handoffs"], params={"kb": kb, "limit": limit})


# ---------------------------------------------------------------- tasks


def translate(
    text: str,
    target_language: str,
    *,
    source_language: str | None = None,
    model: str | None = None,
    max_tokens: int | None = None,
) -> Call[t.TranslateResponse]:
    """Translate ``text`` into ``target_language`` (model default: the server's first)."""
    body = t.TranslateRequest(
        text=text,
        target_language=target_language,
        source_language=source_language,
        model=model,
        max_tokens=max_tokens,
    )
    return build(ROUTES["translate"], body=body)


def summarize(
    text: str,
    *,
    max_words: int | None = None,
    style: Literal["paragraph", "bullets"] | None = None,
    model: str | None = None,
    max_tokens: int | None = None,
) -> Call[t.SummarizeResponse]:
    """Summarize ``text`` in at most ``max_words`` words, as a paragraph or bullets."""
    body = t.SummarizeRequest(
        text=text, max_words=max_words, style=style, model=model, max_tokens=max_tokens
    )
    return build(ROUTES["summarize"], body=body)


def correct(
    text: str, *, model: str | None = None, max_tokens: int | None = None
) -> Call[t.CorrectResponse]:
    """Fix spelling and grammar in ``text``."""
    return build(
        ROUTES["correct"], body=t.CorrectRequest(text=text, model=model, max_tokens=max_tokens)
    )


def classify(
    text: str,
    labels: list[str] | None = None,
    *,
    instructions: str | None = None,
    model: str | None = None,
) -> Call[t.LabelResponse]:
    """Pick one of ``labels`` for ``text`` (a chat model needs labels; a trained classifier
    named by ``model`` defaults to all of its own and returns every label's probability)."""
    body = t.ClassifyRequest(text=text, labels=labels, instructions=instructions, model=model)
    return build(ROUTES["classify"], body=body)


def sentiment(text: str, *, model: str | None = None) -> Call[t.LabelResponse]:
    """The sentiment of ``text`` (positive, negative or neutral)."""
    return build(ROUTES["sentiment"], body=t.SentimentRequest(text=text, model=model))


def moderate(text: str, *, model: str | None = None) -> Call[t.ModerateResponse]:
    """Check ``text`` against the moderation categories."""
    return build(ROUTES["moderate"], body=t.ModerateRequest(text=text, model=model))


def extract(
    text: str,
    schema: dict[str, Any],
    *,
    instructions: str | None = None,
    model: str | None = None,
    max_tokens: int | None = None,
) -> Call[t.ExtractResponse]:
    """Extract a record matching the JSON ``schema`` (an object schema) from ``text``; the
    server's constrained decoding makes the answer valid against it."""
    body = t.ExtractRequest(
        text=text,
        schema=schema,
        instructions=instructions,
        model=model,
        max_tokens=max_tokens,
    )
    return build(ROUTES["extract"], body=body)


# ---------------------------------------------------------------- built-in apps


def write(
    action: t.WriteAction,
    text: str,
    *,
    tone: str | None = None,
    style: str | None = None,
    audience: str | None = None,
    model: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
) -> Call[t.WriteResponse]:
    """The writing assistant: outline, continue, rewrite, shorten or expand ``text``."""
    body = t.WriteRequest(
        text=text,
        tone=tone,
        style=style,
        audience=audience,
        model=model,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )
    return build(ROUTES["write"], path_params={"action": action}, body=body)


def feedback(
    response_id: str,
    rating: Literal["up", "down"],
    *,
    correction: str | None = None,
    comment: str | None = None,
) -> Call[t.FeedbackResponse]:
    """Rate a support answer (its ``id``), optionally with the answer it should have given."""
    body = t.FeedbackRequest(
        response_id=response_id, rating=rating, correction=correction, comment=comment
    )
    return build(ROUTES["feedback"], body=body)


AudioInput = bytes | str | os.PathLike[str] | IO[bytes]


def _audio(audio: AudioInput, filename: str | None) -> tuple[str, bytes]:
    """The upload's file name and bytes, from bytes, a path or a binary file."""
    if isinstance(audio, bytes):
        return filename or "audio", audio
    if isinstance(audio, str | os.PathLike):
        path = Path(audio)
        return filename or path.name, path.read_bytes()
    data = audio.read()
    name = filename or Path(str(getattr(audio, "name", "audio"))).name
    return name, data


def voice(
    kb: str,
    audio: AudioInput,
    *,
    filename: str | None = None,
    voice: str | None = None,
    response_format: t.SpeechFormat | None = None,
    model: str | None = None,
    speech_model: str | None = None,
    user: str | None = None,
    session_id: str | None = None,
) -> Call[t.VoiceAnswer]:
    """Ask the voice support desk of knowledge base ``kb`` a spoken question (``audio``:
    bytes, a path or a binary file): the transcript, a cited answer and its speech.
    ``session_id`` continues a conversation (``x-session-id``)."""
    name, data = _audio(audio, filename)
    form = t.VoiceForm(
        file=data,
        voice=voice,
        response_format=response_format,
        model=model,
        speech_model=speech_model,
        user=user,
    )
    call = build(ROUTES["voice"], path_params={"kb": kb})
    fields = form.model_dump(exclude_none=True, exclude={"file"})
    call.data = {k: str(v) for k, v in fields.items()}
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    call.files = {"file": (name, data, media)}
    if session_id is not None:
        call.headers["x-session-id"] = session_id
    return call


# ---------------------------------------------------------------- tokenizer


def tokenize(
    model: str,
    prompt: str | None = None,
    *,
    messages: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> Call[t.TokenizeResponse]:
    """Token ids of ``prompt``, or of ``messages`` rendered with the model's chat template
    (give exactly one), with their count and the model's context length."""
    if (prompt is None) == (messages is None):
        raise InvalidRequest("give exactly one of prompt and messages", param="prompt")
    body: t.Request
    if prompt is not None:
        body = t.TokenizeCompletionRequest(model=model, prompt=prompt)
    else:
        body = t.TokenizeChatRequest(
            model=model,
            messages=messages or [],
            add_generation_prompt=add_generation_prompt,
            tools=tools,
        )
    return build(ROUTES["tokenize"], json=dump(body))


def detokenize(model: str, tokens: list[int]) -> Call[t.DetokenizeResponse]:
    """The text of ``tokens`` under ``model``'s tokenizer."""
    return build(ROUTES["detokenize"], body=t.DetokenizeRequest(model=model, tokens=tokens))


# ---------------------------------------------------------------- operations


def health() -> Call[t.Health]:
    """Whether the server process lives (public; a liveness probe)."""
    return build(ROUTES["health"])


def ready() -> Call[t.Readiness]:
    """Whether every engine can serve; a server that is not ready raises
    :class:`~llmeco.client.errors.ServiceUnavailableError` at once (never retried)."""
    return build(ROUTES["ready"])
