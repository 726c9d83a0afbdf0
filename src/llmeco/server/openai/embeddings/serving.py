"""Embeddings with the packaged sentence-transformers model."""

from __future__ import annotations

import base64

import numpy as np

from llmeco.errors import InvalidRequest
from llmeco.server.openai.embeddings.protocol import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)
from llmeco.server.state import RequestContext, ServerState, request_guard

MAX_INPUTS = 2048


def _texts(req: EmbeddingRequest) -> list[str]:
    if isinstance(req.input, str):
        return [req.input]
    if req.input and not all(isinstance(x, str) for x in req.input):
        raise InvalidRequest("token-id input is not supported; send text", param="input")
    texts = [str(x) for x in req.input]
    if not texts:
        raise InvalidRequest("input must not be empty", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"at most {MAX_INPUTS} inputs per request", param="input")
    return texts


class OpenAIServingEmbedding:
    """Embeds texts off the event loop and encodes the vectors as OpenAI does."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def create(self, req: EmbeddingRequest, ctx: RequestContext) -> EmbeddingResponse:
        """Vectors for every input, in order, with exact token usage."""
        embedder = self.state.embedding_model(req.model)
        ctx.model = embedder.name
        if req.dimensions is not None and req.dimensions != embedder.dimensions:
            raise InvalidRequest(
                f"{embedder.name} produces {embedder.dimensions}-dimensional vectors; "
                f"dimensions={req.dimensions} is not supported",
                param="dimensions",
            )
        texts = _texts(req)
        counts = embedder.check_lengths(texts)
        guard = request_guard.get()
        if guard is not None:  # charge the key before embedding (429 when over a limit)
            await guard.reserve(sum(counts), room=0)
        try:
            vectors = await embedder.aembed(texts)
        except Exception:
            if guard is not None:
                await guard.refund(sum(counts))
            raise
        self.state.metrics.prompt_tokens.labels(embedder.name).inc(sum(counts))
        data = [
            Embedding(index=i, embedding=_encode(v, req.encoding_format))
            for i, v in enumerate(vectors)
        ]
        tokens = sum(counts)
        return EmbeddingResponse(
            data=data,
            model=embedder.name,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )


def _encode(vector: np.ndarray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]
