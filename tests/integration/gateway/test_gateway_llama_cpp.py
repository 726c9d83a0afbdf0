"""A peer upstream: llama.cpp's OpenAI-compatible server (llama-cpp-python) behind the gateway.

It serves the packaged SmolLM2 GGUF from its own venv (``scripts/peer_venv.py llama-cpp``
builds it once, under ``~/.cache/llmeco-peers/``); the test is skipped, saying how to build
it, where that venv does not exist. llama.cpp writes SSE events with CRLF and may send no
usage when streaming: the gateway relays its bytes and counts the tokens itself.
"""

from __future__ import annotations

import importlib.util
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from gateway_helpers import Served, free_port, serve

from llmeco.modeling.gguf import default_gguf_path

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "peer_venv.py"


def peer_python(name: str) -> Path:
    spec = importlib.util.spec_from_file_location("peer_venv", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return Path(module.peer_python(name))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def llama_cpp() -> Iterator[str]:
    """``python -m llama_cpp.server`` on the packaged GGUF; its OpenAI base URL."""
    python = peer_python("llama-cpp")
    port = free_port()
    proc = subprocess.Popen(
        [
            str(python),
            *("-m", "llama_cpp.server", "--model", str(default_gguf_path())),
            *("--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port)),
            *("--n_ctx", "2048", "--n_threads", "1"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/models", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "llama_cpp.server exited"
            assert time.monotonic() < deadline, "llama_cpp.server did not start"
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def gateway(llama_cpp: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("gw-llama-cpp")
    served = serve(home, "--no-auth", "--upstream", f"smollm2={llama_cpp}")
    yield served
    served.stop()


def test_openai_client_through_the_gateway_to_llama_cpp(gateway: Served) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    cards = {m.id: m for m in client.models.list().data}
    assert cards["smollm2"].owned_by == "smollm2"
    messages = [{"role": "user", "content": "Name a colour."}]
    reply = client.chat.completions.create(
        model="smollm2", messages=messages, max_tokens=8, temperature=0
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="smollm2", messages=messages, max_tokens=8, temperature=0, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and all(c.usage is None for c in chunks)
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    stream = client.completions.create(
        model="smollm2", prompt="Once upon a time", max_tokens=6, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in stream if c.choices)
    metrics = httpx.get(gateway.url + "/metrics", timeout=30).text
    assert 'llmeco_generation_tokens_total{model="smollm2"}' in metrics
