"""Tokenization with exactly the engine's tokenizer and chat template."""

from __future__ import annotations

from llmeco.engine.request import ChatPrompt, Prompt
from llmeco.errors import InvalidRequest
from llmeco.server.openai.chat.messages import render_messages
from llmeco.server.openai.tokenize.protocol import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeChatRequest,
    TokenizeCompletionRequest,
    TokenizeResponse,
)
from llmeco.server.state import RequestContext, ServerState


class OpenAIServingTokenization:
    """``engine.encode`` / ``engine.decode`` over HTTP."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def tokenize(
        self, req: TokenizeCompletionRequest | TokenizeChatRequest, ctx: RequestContext
    ) -> TokenizeResponse:
        """Token ids of a prompt or a conversation."""
        name, engine = self.state.engine(req.model)
        ctx.model = name
        prompt: Prompt
        if isinstance(req, TokenizeChatRequest):
            tools = [t.model_dump(exclude_none=True) for t in req.tools or []]
            prompt = ChatPrompt(
                render_messages(req.messages),
                add_generation_prompt=req.add_generation_prompt,
                tools=tools or None,
            )
        else:
            prompt = req.prompt
        tokens = engine.encode(prompt)
        return TokenizeResponse(
            count=len(tokens), max_model_len=engine.model_info.max_model_len, tokens=tokens
        )

    def detokenize(self, req: DetokenizeRequest, ctx: RequestContext) -> DetokenizeResponse:
        """Text of token ids; ids outside the vocabulary are a 400."""
        name, engine = self.state.engine(req.model)
        ctx.model = name
        vocab = engine.model_info.vocab_size
        bad = [t for t in req.tokens if not 0 <= t < vocab]
        if bad:
            raise InvalidRequest(
                f"token ids outside the vocabulary (0..{vocab - 1}): {bad[:5]}", param="tokens"
            )
        return DetokenizeResponse(prompt=engine.decode(req.tokens))
