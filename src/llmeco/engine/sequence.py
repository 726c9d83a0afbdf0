"""One sequence's state inside the engine: tokens, progress and KV blocks (no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmeco.engine.request import FinishReason, RequestStatus


@dataclass(eq=False)
class Sequence:
    """A prompt plus what has been generated for it, and how much of it the cache holds.

    There are no prefill and decode phases: a sequence simply has ``num_computed`` of its
    ``num_tokens`` tokens in the KV cache, and each step computes some of the rest. When
    all are computed, the step samples the next token.
    """

    seq_id: int
    request_id: str
    index: int
    token_ids: list[int]
    prompt_len: int
    max_tokens: int
    arrival: float
    num_computed: int = 0
    block_ids: list[int] = field(default_factory=list)
    status: RequestStatus = RequestStatus.WAITING
    finish_reason: FinishReason | None = None
    #: Set once the sequence has been scheduled at least once (it has left the queue).
    admitted: bool = False

    @property
    def num_tokens(self) -> int:
        """Prompt plus output tokens."""
        return len(self.token_ids)

    @property
    def output_ids(self) -> list[int]:
        """Generated tokens only."""
        return self.token_ids[self.prompt_len :]

    @property
    def num_output(self) -> int:
        """How many tokens have been generated."""
        return len(self.token_ids) - self.prompt_len

    @property
    def finished(self) -> bool:
        """True once the sequence has stopped for any reason."""
        return self.status is RequestStatus.FINISHED
