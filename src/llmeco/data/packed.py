"""Packed token shards for pretraining: a dataset tokenized once into flat binary files.

``llmeco data pack DATASET --tokenizer T --out DIR`` writes, per split, every document's
tokens followed by EOS into ``{split}-K.bin`` files of ``uint16`` (vocabularies up to
65,536) or ``uint32``, with ``{split}-K.idx.npy`` (each document's start offset) and a
``manifest.json`` index (format ``llmeco-packed/1``: dtype, tokenizer vocab and EOS, and
per shard its tokens and sha256). :class:`PackedBlocks` reads them back as fixed-length
blocks through ``numpy.memmap``, so ``llmeco train pretrain`` with ``data.dataset: DIR``
touches only the blocks it trains on, never the whole corpus in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from llmeco.data.pipeline import read_manifest
from llmeco.data.shards import file_sha256, iter_jsonl, write_json
from llmeco.errors import ConfigError

PACKED_FORMAT = "llmeco-packed/1"
Block = tuple[list[int], list[int]]


def _records(dataset: Path, split: str) -> Iterator[str]:
    """Texts of one split, streamed shard by shard (or from ``{split}.jsonl``)."""
    manifest = read_manifest(dataset)
    if manifest.get("layout") == "shards":
        names = manifest.get("splits", {}).get(split, [])
    else:
        names = [f"{split}.jsonl"] if (dataset / f"{split}.jsonl").is_file() else []
    for name in names:
        for record in iter_jsonl(dataset / name):
            if "text" in record:
                yield str(record["text"])
            elif "messages" in record:
                yield "\n".join(f"{m['role']}: {m['content']}" for m in record["messages"])


def pack_dataset(
    dataset: Path, tokenizer: Any, out: Path, *, shard_tokens: int = 50_000_000, batch: int = 256
) -> dict[str, Any]:
    """Tokenize ``dataset``'s splits with ``tokenizer`` (a HF tokenizer) into ``out``;
    return the index written to ``out/manifest.json``.

    Raises:
        ConfigError: the tokenizer has no EOS, or the dataset has no train text.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("the tokenizer has no eos token to separate documents")
    vocab = len(tokenizer)
    dtype = np.uint16 if vocab <= 2**16 else np.uint32
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {
        "format": PACKED_FORMAT,
        "dataset": str(dataset),
        "dataset_manifest_sha256": file_sha256(dataset / "manifest.json"),
        "dtype": np.dtype(dtype).name,
        "vocab_size": vocab,
        "eos_token_id": int(eos),
        "splits": {},
    }
    for split in ("train", "validation"):
        index["splits"][split] = _pack_split(
            _records(dataset, split), tokenizer, out, split, dtype, shard_tokens, batch, int(eos)
        )
    if not index["splits"]["train"]["tokens"]:
        raise ConfigError(f"{dataset}: no train text to pack")
    write_json(out / "manifest.json", index)
    return index


def _pack_split(
    texts: Iterator[str],
    tokenizer: Any,
    out: Path,
    split: str,
    dtype: type[np.unsignedinteger[Any]],
    shard_tokens: int,
    batch: int,
    eos: int,
) -> dict[str, Any]:
    shards: list[dict[str, Any]] = []
    buffer: list[np.ndarray] = []
    starts: list[int] = []
    size = documents = total = 0

    def flush() -> None:
        nonlocal buffer, starts, size
        if not buffer:
            return
        k = len(shards)
        name = f"{split}-{k:05d}.bin"
        np.concatenate(buffer).astype(dtype).tofile(out / name)
        np.save(out / f"{split}-{k:05d}.idx.npy", np.array(starts, np.int64))
        shards.append(
            {
                "file": name,
                "tokens": size,
                "documents": len(starts),
                "sha256": file_sha256(out / name),
            }
        )
        buffer, starts, size = [], [], 0

    def add(chunk: list[str]) -> None:
        nonlocal size, documents, total
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            tokens = np.append(np.asarray(ids, np.int64), eos)
            starts.append(size)
            buffer.append(tokens)
            size += len(tokens)
            total += len(tokens)
            documents += 1
            if size >= shard_tokens:
                flush()

    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) >= batch:
            add(chunk)
            chunk = []
    if chunk:
        add(chunk)
    flush()
    return {"tokens": total, "documents": documents, "shards": shards}


def is_packed(path: Path) -> bool:
    """Whether ``path`` is a folder written by :func:`pack_dataset`."""
    try:
        index = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(index, dict) and index.get("format") == PACKED_FORMAT


class PackedBlocks(Sequence[Block]):
    """Blocks of ``seq_len`` tokens over a split's shards, read on demand (memmap).

    Blocks never cross a shard boundary; each shard's tail shorter than a block is
    dropped, as :func:`llmeco.training.objectives.pack_blocks` drops the corpus tail.
    An item is ``(input_ids, labels)`` with labels equal to the inputs (the causal shift
    happens in the model).
    """

    def __init__(self, path: Path, split: str, seq_len: int) -> None:
        index = json.loads((path / "manifest.json").read_text())
        if index.get("format") != PACKED_FORMAT:
            raise ConfigError(f"{path} is not a packed token folder (llmeco data pack)")
        self.meta = index
        self.seq_len = seq_len
        dtype = np.dtype(index["dtype"])
        self._maps: list[np.memmap[Any, np.dtype[Any]]] = []
        self._ends = [0]
        for shard in index["splits"].get(split, {}).get("shards", []):
            blocks = shard["tokens"] // seq_len
            if not blocks:
                continue
            self._maps.append(np.memmap(path / shard["file"], dtype=dtype, mode="r"))
            self._ends.append(self._ends[-1] + blocks)

    def check_tokenizer(self, tokenizer: Any) -> None:
        """Raise ConfigError unless ``tokenizer`` is the one the shards were made with
        (same vocabulary size and EOS id)."""
        vocab, eos = self.meta["vocab_size"], self.meta["eos_token_id"]
        if len(tokenizer) != vocab or tokenizer.eos_token_id != eos:
            raise ConfigError(
                f"the packed tokens were made with a tokenizer of {vocab} tokens (eos {eos}); "
                f"this run's has {len(tokenizer)} (eos {tokenizer.eos_token_id}): pack again"
            )

    def __len__(self) -> int:
        return self._ends[-1]

    def _block(self, i: int) -> Block:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        shard = int(np.searchsorted(self._ends, i, side="right")) - 1
        start = (i - self._ends[shard]) * self.seq_len
        ids = self._maps[shard][start : start + self.seq_len].astype(np.int64).tolist()
        return ids, list(ids)

    @overload
    def __getitem__(self, i: int) -> Block: ...

    @overload
    def __getitem__(self, i: slice) -> list[Block]: ...

    def __getitem__(self, i: int | slice) -> Block | list[Block]:
        if isinstance(i, slice):
            return [self._block(j) for j in range(*i.indices(len(self)))]
        return self._block(i)
