"""Examples and loss: assistant-only labels that keep the end token; accumulation invariance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmeco.modeling.load import load_tokenizer
from llmeco.training.loop import accumulate_step, enable_checkpointing
from llmeco.training.objectives import (
    IGNORE,
    CausalObjective,
    ExampleStream,
    pack_blocks,
    sft_example,
)

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "How long is delivery?"},
    {"role": "assistant", "content": "Three to five days."},
    {"role": "user", "content": "And express?"},
    {"role": "assistant", "content": "Next working day."},
]


def test_sft_labels_cover_assistant_replies_and_their_end_token(tiny_llama_dir: Path) -> None:
    tok = load_tokenizer(tiny_llama_dir)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    example = sft_example(CHAT, tok, {im_end}, seq_len=512)
    assert example is not None
    ids, labels = example
    # The inputs are exactly the chat template's tokens: what the engine sees at inference.
    rendered = tok.apply_chat_template(CHAT, tokenize=False)
    assert tok.decode(ids) == rendered
    targets = [label for label in labels if label != IGNORE]
    assert tok.decode(targets) == "Three to five days.<|im_end|>Next working day.<|im_end|>"
    # The assistant's end token is a target: masked out, the model never learns to stop ...
    end_positions = [i for i, t in enumerate(ids) if t == im_end]
    labelled_ends = [i for i in end_positions if labels[i] == im_end]
    assert len(labelled_ends) == 2 and labelled_ends[-1] == end_positions[-1]
    # ... while the system/user turns' end tokens and the prompts are not.
    assert sum(1 for i in end_positions if labels[i] == IGNORE) == 3


def test_sft_truncation_without_targets_is_dropped(tiny_llama_dir: Path) -> None:
    tok = load_tokenizer(tiny_llama_dir)
    assert sft_example(CHAT, tok, {2}, seq_len=8) is None


def test_pack_blocks_and_stream(small_tokenizer: Path) -> None:
    tok = load_tokenizer(small_tokenizer)
    records = [{"text": "hello world " * 20}, {"text": "bicycles " * 30}]
    blocks = pack_blocks(records, tok, 16)
    assert all(len(ids) == 16 and ids == labels for ids, labels in blocks)
    assert tok.eos_token_id in [t for ids, _ in blocks for t in ids]
    stream = ExampleStream(blocks, seed=3)
    first = stream.take(len(blocks) + 2)  # rolls into epoch 1
    state = stream.state_dict()
    assert state["epoch"] == 1 and state["position"] == 2
    again = ExampleStream(blocks, seed=3)
    again.load_state_dict(state)
    assert again.take(3) == stream.take(3)
    assert sorted(first[: len(blocks)]) == sorted(blocks)


@pytest.mark.parametrize("micro", [2, 3])
def test_accumulation_matches_one_big_batch(tiny_llama_dir: Path, micro: int) -> None:
    """bs=8 ≡ bs=micro × accum: same loss and gradients, because the loss is normalised by the
    target tokens of the whole accumulated batch, not per micro-batch (trl #2175)."""
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(tiny_llama_dir)
    chats = []
    for i in range(8):  # replies of very different lengths → different target counts
        reply = "ok. " * (1 + 3 * i)
        chats.append(
            [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": reply}]
        )
    examples = [sft_example(c, tok, {2}, 256) for c in chats]
    batch = [e for e in examples if e is not None]
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32)
    cpu = torch.device("cpu")

    loss_big, n_big = accumulate_step(model, batch, 8, CausalObjective(2), cpu)
    grads_big = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    loss_acc, n_acc = accumulate_step(model, batch, micro, CausalObjective(2), cpu)
    grads_acc = [p.grad.clone() for p in model.parameters()]

    assert n_big == n_acc
    assert float(loss_acc) == pytest.approx(float(loss_big), abs=1e-5)
    for big, acc in zip(grads_big, grads_acc, strict=True):
        torch.testing.assert_close(acc, big, atol=1e-5, rtol=1e-4)


def test_gradient_checkpointing_changes_nothing_but_memory(tiny_llama_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(tiny_llama_dir)
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]
    example = sft_example(chat, tok, {2}, 64)
    assert example is not None
    results = []
    for checkpointing in (False, True):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32)
        model.train()
        if checkpointing:
            enable_checkpointing(model)
        loss, _ = accumulate_step(model, [example], 1, CausalObjective(2), torch.device("cpu"))
        results.append((float(loss), [p.grad.clone() for p in model.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], abs=1e-6)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b)
