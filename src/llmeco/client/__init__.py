"""A typed Python client for llmeco's own API — sync :class:`Client`, async :class:`AsyncClient`.

::

    from llmeco.client import Client

    with Client("http://127.0.0.1:8000", api_key="llmeco-…") as llm:
        print(llm.translate("Bonjour", "English").translation)
        key = llm.create_key("ci", ["chat"], rpm=60)          # admin scope
        print(llm.usage().remaining_tokens)

It covers every route that is not part of the OpenAI API: tasks (``/v1/tasks/*``), the
writing assistant (``/v1/apps/write/*``), the voice desk (``/v1/apps/voice/{kb}``), support
feedback and hand-offs, admin (keys, usage, aliases, served models and reloads, session
erasure), ``/v1/usage``, ``/tokenize``/``/detokenize`` and ``/health``/``/ready``. Answers
are pydantic models (:mod:`llmeco.client.types`); error answers raise the
:mod:`llmeco.errors` exception the server raised (401 :class:`~llmeco.errors.AuthError`,
403 :class:`~llmeco.errors.PermissionDenied`, 404 :class:`~llmeco.errors.NotFound`,
400/422 :class:`~llmeco.errors.InvalidRequest`, 429 :class:`~llmeco.errors.LimitExceeded`,
503 :class:`~llmeco.errors.ServiceUnavailable`, …) as a subclass of
:class:`~llmeco.client.errors.APIError` carrying the status, type, code, param and the
server's request id (:mod:`llmeco.client.errors`). 429 and 503 answers and connection
failures are retried with exponential backoff and jitter, honouring ``Retry-After``
(:class:`RetryPolicy`); a POST that changes state (a new key, feedback, a reload) is never
sent again once it may have reached the server.

The OpenAI routes — chat, completions, embeddings, audio, models — are served exactly as
OpenAI's API, so use the ``openai`` SDK for them, pointed at llmeco's ``/v1`` with the same
key::

    import openai

    oa = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="llmeco-…")
    oa.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
    # the support assistant is a model name: model="support:<kb>"

(``openai.AsyncOpenAI`` likewise.) The client depends on httpx and pydantic only; it
imports nothing of the server, the engine or torch.
"""

from __future__ import annotations

from llmeco.client import errors, types
from llmeco.client._api import NOT_GIVEN, ROUTES
from llmeco.client._client import AsyncClient, Client
from llmeco.client._core import RetryPolicy, parse_retry_after
from llmeco.client.errors import APIConnectionError, APIError, APITimeoutError

__all__ = [
    "NOT_GIVEN",
    "ROUTES",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
    "Client",
    "RetryPolicy",
    "errors",
    "parse_retry_after",
    "types",
]
