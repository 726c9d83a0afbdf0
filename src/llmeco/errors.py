"""One exception tree for the whole library; the edges (HTTP, CLI) translate it.

::

    LlmecoError
    ├── ConfigError        bad settings or configuration           → 400 / CLI usage error
    ├── InvalidRequest     a request the engine can never serve     → 400
    │   ├── ContextLengthExceeded   prompt + max_tokens over the context → 400
    │   ├── PayloadTooLarge  an upload over a size or duration limit  → 413
    │   └── UnsupportedMedia an upload that is not a format we read   → 415
    ├── NotFound           unknown model, key, version …            → 404
    ├── UnsafeFile         a pickled checkpoint or a path escaping its root → 400
    ├── AuthError          missing or bad credentials               → 401
    ├── PermissionDenied   a key without the scope it needs         → 403
    ├── LimitExceeded      quota or rate limit                      → 429 + Retry-After
    │   └── Overloaded     the engine's waiting queue is full       → 429 + Retry-After
    ├── GateFailed         a promotion gate blocked a candidate     → 409 / CLI exit 1
    ├── GenerateError      a generation failed; the engine lives on → 500
    └── ServiceUnavailable a dependency the server needs is down    → 503
        ├── EngineDead          the engine cannot serve any more → 503 engine_unavailable
        ├── LimitsUnavailable   the limits store (Redis) is down → 503 limits_unavailable
        └── UpstreamError       every URL of an upstream server failed → 502 upstream_error
            └── UpstreamTimeout the upstream did not answer in time  → 504 upstream_timeout
"""

from __future__ import annotations


class LlmecoError(Exception):
    """Base of every error llmeco raises on purpose."""

    #: Parameter of the request the error is about, when there is one.
    param: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param


class ConfigError(LlmecoError):
    """Settings or configuration that cannot work; the message says what to change."""


class InvalidRequest(LlmecoError):
    """A request that can never be served as given (bad parameters, too long, …)."""


class ContextLengthExceeded(InvalidRequest):
    """Prompt plus requested new tokens do not fit the model's context."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context: int) -> None:
        super().__init__(
            f"This model's maximum context length is {context} tokens, but the request has "
            f"{prompt_tokens} prompt tokens and asks for {max_tokens} new tokens "
            f"({prompt_tokens + max_tokens} in all). Shorten the prompt or lower max_tokens.",
            param="max_tokens",
        )
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context = context


class PayloadTooLarge(InvalidRequest):
    """An upload (audio, a file) over a size or duration limit; the message names the limit."""


class UnsupportedMedia(InvalidRequest):
    """An upload that is not in a format the server reads (e.g. not audio)."""


class NotFound(LlmecoError):
    """A named thing (model, key, version, file) does not exist."""


class UnsafeFile(LlmecoError):
    """A file we refuse to read: pickled weights, or a path outside its root."""


class AuthError(LlmecoError):
    """Missing or invalid credentials."""


class PermissionDenied(LlmecoError):
    """Valid credentials without the scope or model the action needs."""


class LimitExceeded(LlmecoError):
    """A quota or rate limit was hit; ``retry_after`` is in seconds; ``limit`` names which
    (rpm, tpm, daily_budget, queue; for the per-key rejection metric)."""

    limit = "rate"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float = 1.0,
        param: str | None = None,
        limit: str | None = None,
    ):
        super().__init__(message, param=param)
        self.retry_after = retry_after
        if limit is not None:
            self.limit = limit


class Overloaded(LimitExceeded):
    """The engine's bounded waiting queue is full; try again shortly."""

    limit = "queue"


class GateFailed(LlmecoError):
    """A registry promotion gate blocked a candidate; the message names the metric."""


class GenerateError(LlmecoError):
    """One generation failed; other requests and the engine carry on."""


class ServiceUnavailable(LlmecoError):
    """Something the server needs to answer is down; the request may succeed later.

    The base of every 503: the HTTP edge maps each subclass to its own error code, so a
    client (and an operator reading the response) can tell which dependency failed.
    """


class EngineDead(ServiceUnavailable):
    """The engine has stopped (shut down or crashed) and serves no more requests."""


class LimitsUnavailable(ServiceUnavailable):
    """The shared limits store (Redis) cannot be reached, so requests are refused rather than
    served unmetered; the message names the Redis URL without its credentials."""


class UpstreamError(ServiceUnavailable):
    """An upstream OpenAI-compatible server (the gateway's ``--upstream``) failed: refused
    the connection, answered 502/503/504 or broke its response, on every URL and fallback."""


class UpstreamTimeout(UpstreamError):
    """An upstream did not answer within its configured ``timeout`` (our timeout, not the
    client's), so the gateway gave up on it."""
