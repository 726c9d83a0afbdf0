"""Train a byte-level BPE tokenizer on a prepared dataset, saved for ``transformers``.

The result loads with ``AutoTokenizer.from_pretrained(dir)`` as a ``PreTrainedTokenizerFast``
with ``<|endoftext|>`` (bos/eos, document separator), ``<|pad|>`` and the ChatML markers
``<|im_start|>``/``<|im_end|>`` plus a ChatML chat template, so models trained with it can
be fine-tuned on conversations and served by the engine's chat endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmeco.data.pipeline import load_records
from llmeco.errors import ConfigError

ENDOFTEXT = "<|endoftext|>"
PAD = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, PAD, IM_START, IM_END]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def record_text(record: dict[str, Any]) -> str:
    """A record as plain text: the text, or a conversation's turns one per line."""
    if "messages" in record:
        return "\n".join(f"{m['role']}: {m['content']}" for m in record["messages"])
    return str(record["text"])


def _texts(dataset: Path) -> Iterator[str]:
    for record in load_records(dataset, "train"):
        yield record_text(record)


def train_tokenizer(dataset: Path, vocab_size: int, out: Path, min_frequency: int = 2) -> Any:
    """Train on ``dataset``'s train split, save to ``out``, and return the HF tokenizer.

    Raises:
        ConfigError: vocab size too small to hold the 256 bytes and special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    floor = 256 + len(SPECIAL_TOKENS)
    if vocab_size < floor:
        raise ConfigError(f"--vocab-size must be at least {floor} (256 bytes + special tokens)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_texts(dataset), trainer=trainer)
    hf = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        unk_token=None,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
    )
    hf.chat_template = CHATML_TEMPLATE
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out))
    manifest = out / "llmeco_tokenizer.json"
    manifest.write_text(
        json.dumps({"dataset": str(dataset), "vocab_size": len(hf), "requested": vocab_size}) + "\n"
    )
    return hf
