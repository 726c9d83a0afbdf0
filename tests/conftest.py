"""Shared fixtures: the packaged default model (converted once) and a tiny random Llama.

torch and transformers are imported inside the fixtures so tests that need neither (the
scheduler's, the server's against a fake engine) collect fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from llmeco.settings import Settings

if TYPE_CHECKING:
    from llmeco.apps.speech.service import SpeechService
    from llmeco.rag.embed import Embedder

DATA = Path(__file__).parent / "data"

# The CPU default quantizes weights (LLMECO_QUANTIZATION=auto -> int8); tests compare against
# float32 Hugging Face models, so the suite (and every server it starts) runs float32 unless a
# test asks for a quantization explicitly. The HF-equality tests also pin it themselves.
os.environ.setdefault("LLMECO_QUANTIZATION", "none")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a pytest-xdist run that would take ``serial`` tests: schemathesis reports every
    API operation under one node id, and xdist then runs one of them and silently drops the
    rest. ``make test`` deselects them in its parallel pass and runs them in a serial one."""
    workers = getattr(config.option, "numprocesses", None)
    if workers and "not serial" not in (config.option.markexpr or ""):
        raise pytest.UsageError(
            "tests marked serial (the schemathesis runs) cannot go to pytest-xdist workers: "
            'add -m "not gpu and not serial" to this run and run -m serial with -n 0'
        )


@pytest.fixture(scope="session")
def cached_home(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``LLMECO_HOME`` kept between local runs so the GGUF is converted once per checkout.

    It lives in pytest's cache (``.pytest_cache/d/llmeco-home``); with the cache plugin off
    (``-p no:cacheprovider``) it falls back to a fresh session directory.
    """
    cache = getattr(pytestconfig, "cache", None)
    if cache is None:
        return tmp_path_factory.mktemp("llmeco-home")
    home: Path = cache.mkdir("llmeco-home")
    return home


@pytest.fixture(scope="session")
def default_model_dir(cached_home: Path) -> Path:
    """The packaged SmolLM2-135M-Instruct as a safetensors HF directory (float32, tied
    embeddings, vocab 49152, eos ``<|im_end|>`` = 2). ~17 s the first time, then cached."""
    from llmeco.modeling.load import resolve_model

    return resolve_model("default", Settings(home=cached_home)).path


@pytest.fixture(scope="session")
def tiny_llama_dir(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random-weight Llama saved as a safetensors HF directory, with SmolLM2's
    tokenizer and chat template (vocab 49152, eos 2).

    hidden 64, intermediate 128, 4 heads × 16, 2 KV heads, context 512, untied ``lm_head``
    drawn with std 0.5 (peaked logits, so greedy decoding has few near-ties). Seeded: the
    same weights on every run.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmeco.modeling.load import load_tokenizer

    tokenizer = load_tokenizer(default_model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.5)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.model_max_length = config.max_position_embeddings
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the local server (dropped afterwards).

    The machines and CI run PostgreSQL on 127.0.0.1:5432 with trust auth (``make test`` starts
    it if it is down); a test that needs it fails loudly rather than skipping.
    """
    import uuid

    import psycopg

    name = f"llmeco_t_{uuid.uuid4().hex[:12]}"
    admin = "postgresql://postgres@127.0.0.1:5432/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL on the local server with a database of its own, emptied before use."""
    import os

    import redis

    db = 1 + (os.getpid() % 15)  # separate databases for parallel test processes
    url = f"redis://127.0.0.1:6379/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    """The packaged all-MiniLM-L6-v2 (loaded once per session, ~3 s)."""
    from llmeco.rag.embed import Embedder

    e = Embedder()
    yield e
    e.close()


@pytest.fixture(scope="session")
def speech() -> SpeechService:
    """The bundled speech models (Whisper tiny.en, eSpeak NG), shared by the session: Whisper
    loads on first use (~1 s) and is reused by every test that transcribes."""
    from llmeco.apps.speech.service import SpeechService

    return SpeechService.from_settings(Settings(threads=2))


@pytest.fixture(scope="session")
def acme_handbook() -> str:
    """A three-section handbook (refunds, opening hours, warranty) for support-desk tests."""
    return (DATA / "acme_handbook.md").read_text()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test (restored after): tiny models gain nothing from a second
    thread, and on a shared, oversubscribed CPU an OpenMP team of two is many times slower.
    Test packages that train or run tiny models use it autouse through their conftest."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
