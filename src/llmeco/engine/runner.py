"""Turns a scheduler plan into tensors, runs the model, and returns the logits to sample.

The KV cache is one tensor reserved at start-up: ``[layers, 2, slots, kv_heads, head_dim]``
where ``slots = blocks x block_size``; a token at position ``p`` of a sequence lives in slot
``block_ids[p // block_size] * block_size + p % block_size``.
"""

from __future__ import annotations

import torch

from llmeco.engine.sequence import Sequence
from llmeco.modeling.llama import AttentionBatch, LlamaModel, PrefillSpan


def kv_bytes_per_token(
    num_layers: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype
) -> int:
    """Bytes of K and V one token occupies across all layers."""
    return 2 * num_layers * num_kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()


class ModelRunner:
    """Owns the model and the KV tensor; executes one step at a time."""

    def __init__(
        self,
        model: LlamaModel,
        num_blocks: int,
        block_size: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        d = model.dims
        self.model = model
        self.device = device
        self.block_size = block_size
        self.kv = torch.zeros(
            (d.num_layers, 2, num_blocks * block_size, d.num_kv_heads, d.head_dim),
            dtype=dtype,
            device=device,
        )

    @torch.inference_mode()
    def execute(
        self,
        scheduled: list[tuple[Sequence, int]],
        sample: list[bool],
        num_logits: list[int] | None = None,
    ) -> torch.Tensor:
        """Run one step; return float32 logits [rows that sample, vocab] in batch order.

        ``sample[i]`` says whether ``scheduled[i]`` ends this step with all its tokens
        computed (so its last position's logits are needed). ``num_logits[i]``, when given,
        overrides that: the logits of the last ``num_logits[i]`` positions of ``scheduled[i]``
        are returned, in position order (speculative verification and prompt scoring need
        every position, not only the last).
        """
        bs = self.block_size
        input_ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        decode_rows: list[int] = []
        decode_tables: list[list[int]] = []
        decode_lens: list[int] = []
        prefills: list[PrefillSpan] = []
        prefill_tables: list[tuple[int, list[int]]] = []
        logit_rows: list[int] = []

        for i, ((seq, num_new), wants_logits) in enumerate(zip(scheduled, sample, strict=True)):
            start = seq.num_computed
            row = len(input_ids)
            input_ids.extend(seq.token_ids[start : start + num_new])
            for p in range(start, start + num_new):
                positions.append(p)
                slots.append(seq.block_ids[p // bs] * bs + p % bs)
            if num_new == 1:
                decode_rows.append(row)
                decode_tables.append(seq.block_ids)
                decode_lens.append(start + 1)
            else:
                if start > 0:
                    prefill_tables.append((len(prefills), seq.block_ids))
                prefills.append(PrefillSpan(row, num_new, start, None))
            n_logits = (1 if wants_logits else 0) if num_logits is None else num_logits[i]
            logit_rows.extend(range(row + num_new - n_logits, row + num_new))

        dev = self.device
        batch = AttentionBatch(slot_mapping=torch.tensor(slots, dtype=torch.long, device=dev))
        if decode_rows:
            gather, mask = self._gather_slots(decode_tables, decode_lens)
            batch.decode_rows = torch.tensor(decode_rows, dtype=torch.long, device=dev)
            batch.decode_only = not prefills
            batch.decode_gather = gather
            batch.decode_mask = mask[:, None, None, :]
        for idx, table in prefill_tables:
            span = prefills[idx]
            gather, _ = self._gather_slots([table], [span.start_pos + span.num_new])
            span.gather = gather[0, : span.start_pos + span.num_new]
        batch.prefills = prefills

        hidden: torch.Tensor = self.model(
            torch.tensor(input_ids, dtype=torch.long, device=dev),
            torch.tensor(positions, dtype=torch.long, device=dev),
            batch,
            self.kv,
        )
        if not logit_rows:
            return hidden.new_empty((0, self.model.dims.vocab_size), dtype=torch.float32)
        rows = torch.tensor(logit_rows, dtype=torch.long, device=dev)
        return self.model.logits(hidden[rows]).float()

    def _gather_slots(
        self, tables: list[list[int]], lengths: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cache slots of each sequence's first ``length`` tokens, padded: ([B, L], mask)."""
        bs = self.block_size
        max_len = max(lengths)
        max_blocks = -(-max_len // bs)
        padded = [t[:max_blocks] + [0] * (max_blocks - len(t[:max_blocks])) for t in tables]
        table = torch.tensor(padded, dtype=torch.long, device=self.device)  # [B, nb]
        pos = torch.arange(max_blocks * bs, device=self.device)
        gather = table[:, pos // bs] * bs + (pos % bs)[None, :]  # [B, L]
        mask = pos[None, :] < torch.tensor(lengths, device=self.device)[:, None]
        return gather, mask

    @torch.inference_mode()
    def copy_blocks(self, pairs: list[tuple[int, int]]) -> None:
        """Copy whole blocks (src -> dst) in every layer, for sequences forked from a prompt."""
        bs = self.block_size
        for src, dst in pairs:
            self.kv[:, :, dst * bs : (dst + 1) * bs] = self.kv[:, :, src * bs : (src + 1) * bs]
