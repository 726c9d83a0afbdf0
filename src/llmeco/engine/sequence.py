"""One sequence's state inside the engine: tokens, progress and KV blocks (no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmeco.engine.kv_cache import block_hash
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
    #: Prefix caching: never reuse cached blocks for this sequence (a request that needs
    #: logits at every prompt position, e.g. prompt logprobs, must compute them all).
    skip_prefix_cache: bool = False
    #: Prefix caching: mixed into every block hash; set it to whatever besides the tokens
    #: changes the K/V (a LoRA adapter id), so such blocks are never shared across values.
    cache_salt: str = ""
    #: Prompt tokens found in the prefix cache when the sequence was first admitted
    #: (reported as ``usage.prompt_tokens_details.cached_tokens``).
    num_cached_tokens: int = 0
    #: Content hashes of the sequence's first full blocks (see :meth:`block_hashes_upto`).
    block_hashes: list[bytes] = field(default_factory=list)
    #: How many of ``block_ids``' leading blocks are known to the prefix cache (taken from
    #: it or registered in it); the scheduler registers the rest as they fill up.
    num_cached_blocks: int = 0

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

    def block_hashes_upto(self, num_tokens: int, block_size: int) -> list[bytes]:
        """Content hashes of the full blocks among the first ``num_tokens`` tokens.

        Computed once per block and kept (a block's hash chains its prefix's). Only call it
        over tokens that are final: prompt tokens, and generated tokens that will not be
        taken back (speculative drafts only once accepted).
        """
        full = min(num_tokens, len(self.token_ids)) // block_size
        hashes = self.block_hashes
        while len(hashes) < full:
            i = len(hashes)
            parent = hashes[-1] if hashes else None
            chunk = self.token_ids[i * block_size : (i + 1) * block_size]
            hashes.append(block_hash(parent, chunk, self.cache_salt))
        return hashes[:full]
