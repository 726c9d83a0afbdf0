"""`prepare --ray`: the corpus steps on a local Ray cluster (2 workers) give byte-identical
shards to the single-process run, on the issue's footer/repeated-page corpus."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from llmeco.data.corpus_run import local_map, prepare_corpus, ray_mapper
from llmeco.data.shards import iter_jsonl
from llmeco.data.steps import CorpusConfig
from llmeco.data.synthetic_web import WebCorpus

pytest.importorskip("ray")

FOOTER = "Subscribe to our newsletter for weekly updates and local stories."


def _corpus(path: Path) -> None:
    rng = random.Random(3)
    web = WebCorpus(seed=5, sites=1)
    rows: list[dict[str, str]] = []
    for n in range(300):
        text = "\n".join(web.paragraph(3, 5) for _ in range(5))
        if n % 20 == 7:  # 5%: one line repeated
            text = "\n".join([f"Best cheap watches online today at shop {n}."] * 12)
        elif rng.random() < 0.3:  # 30%: the shared footer
            text += "\n" + FOOTER
        if n in (50, 51):  # and an exact copy
            text = rows[10]["text"] if n == 50 else text
        rows.append({"id": f"p{n:03d}", "text": text})
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.slow
def test_ray_output_is_byte_identical(tmp_path: Path) -> None:
    import ray

    _corpus(tmp_path / "in" / "web.jsonl")
    cfg = CorpusConfig(validation_fraction=0.1)
    local = prepare_corpus(
        [tmp_path / "in"], tmp_path / "local", cfg, shard_mb=0.06, mapper=local_map
    )
    try:
        on_ray = prepare_corpus(
            [tmp_path / "in"], tmp_path / "ray", cfg, shard_mb=0.06, mapper=ray_mapper(None, 2)
        )
    finally:
        ray.shutdown()
    assert local["counts"]["shards"] >= 4
    assert on_ray["files"] == local["files"]  # same names, records, bytes and sha256
    for name in local["files"]:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert (
        on_ray["duplicates"]
        == local["duplicates"]
        == [{"id": "p050", "duplicate_of": "p010", "kind": "exact"}]
    )
    rows = [r for p in sorted((tmp_path / "local").glob("*.zst")) for r in iter_jsonl(p)]
    assert sum(FOOTER in r["text"] for r in rows) == 1
    assert not {r["id"] for r in rows} & {f"p{n:03d}" for n in range(7, 300, 20)}
