"""Chat backends: who answers ``/v1/chat/completions`` for a family of model names.

A model name is served either by an engine (``default``, ``tiny``: the OpenAI chat endpoint
runs it itself) or by a chat backend registered for a name prefix (``support:<kb>`` is the
support assistant over knowledge base ``kb``). ``build_app`` registers the backends; the chat
endpoint asks the server state for the backend of a request's model and hands it the whole
request, so it never knows which apps exist. A new kind of model (an agent, a remote
upstream) is a new backend, not a new branch in the endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from llmeco.server.openai.chat.protocol import ChatCompletionRequest
    from llmeco.server.openai.models.protocol import ModelCard
    from llmeco.server.state import ServerState


class ChatBackend(Protocol):
    """Serves chat completions for every model whose name starts with :attr:`prefix`."""

    #: The model-name prefix this backend answers (``"support:"``).
    prefix: str

    async def create(
        self, state: ServerState, req: ChatCompletionRequest, request: Request
    ) -> Response:
        """Answer one validated chat request (JSON, or an SSE stream when ``req.stream``).

        Raises the library's typed errors (``NotFound`` for an unknown model under the
        prefix, ``InvalidRequest`` for a parameter the backend cannot honour); the server
        maps them to OpenAI-style error responses.
        """
        ...

    def model_cards(self, state: ServerState) -> list[ModelCard]:
        """The models this backend serves now, as ``/v1/models`` lists them (the server
        filters them by what the caller's key may see)."""
        ...
