"""llmeco as a governed gateway in front of another llmeco (the packaged default model).

Two real ``llmeco serve`` processes, both with auth: the upstream serves the default model
and the embedder; the gateway loads no model and relays ``small`` and ``emb`` to it with
its own key (``api_key_env``). The official ``openai`` client talks to the gateway only;
keys, scopes, model allow-lists, RPM, budgets, usage and the audit ledger are the
gateway's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from gateway_helpers import Served, new_key, serve, served_model, write_config

from llmeco.governance.audit import tables as t
from llmeco.settings import Settings
from llmeco.store import Store

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "Name a colour."}]


@dataclass
class Stack:
    upstream: Served
    gateway: Served
    gw_home: Path
    keys: dict[str, str]

    def client(self, key: str = "full") -> openai.OpenAI:
        token = self.keys.get(key, key)
        return openai.OpenAI(base_url=self.gateway.url + "/v1", api_key=token, max_retries=0)

    def audit(self, request_id: str) -> dict[str, Any]:
        """The gateway's ledger entry of one request."""
        store = Store.from_settings(Settings(home=self.gw_home))
        try:
            c = t.entries.c
            with store.session() as s:
                payload = s.execute(sa.select(c.payload).where(c.request_id == request_id)).scalar()
        finally:
            store.close()
        assert payload is not None, request_id
        return dict(json.loads(payload))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path) -> Iterator[Stack]:
    up_home = tmp_path_factory.mktemp("upstream-home")
    gw_home = tmp_path_factory.mktemp("gateway-home")
    up_token = new_key(up_home, "gateway", "chat,completions,embeddings,models")
    upstream = serve(up_home, "--model", str(default_model_dir))
    gateway = None
    try:
        model = served_model(upstream.url, up_token)
        common = {"api_key_env": "UPSTREAM_KEY", "owned_by": "llmeco-upstream", "timeout": 300}
        config = write_config(
            gw_home / "models.yaml",
            [
                {"name": "small", "urls": [upstream.url], "model": model, **common},
                {
                    "name": "emb",
                    "urls": [upstream.url + "/v1"],
                    "model": "all-minilm-l6-v2",
                    **common,
                },
            ],
        )
        all_scopes = "chat,completions,embeddings,models"
        keys = {
            "full": new_key(gw_home, "full", all_scopes),
            "counted": new_key(gw_home, "counted", all_scopes),
            "chat-only": new_key(gw_home, "chat-only", "chat"),
            "emb-only": new_key(gw_home, "emb-only", all_scopes, "--models", "emb"),
            "rpm": new_key(gw_home, "rpm", "chat", "--rpm", "2"),
            "budget": new_key(gw_home, "budget", "chat", "--daily-tokens", "120"),
        }
        gateway = serve(gw_home, "--models-config", str(config), UPSTREAM_KEY=up_token)
        yield Stack(upstream, gateway, gw_home, keys)
    finally:
        if gateway is not None:
            gateway.stop()
        upstream.stop()


def test_models_lists_the_upstream_models_owned_by_the_upstream(stack: Stack) -> None:
    cards = {m.id: m for m in stack.client().models.list().data}
    assert set(cards) == {"small", "emb"}  # the gateway loads no model of its own
    assert cards["small"].owned_by == "llmeco-upstream"
    assert (cards["small"].model_extra or {}).get("max_model_len") == 8192  # learnt upstream


def test_chat_non_streamed_relays_the_upstream_answer_and_audits_its_tokens(stack: Stack) -> None:
    raw = stack.client().chat.completions.with_raw_response.create(
        model="small", messages=MESSAGES, max_tokens=6, temperature=0
    )
    reply = raw.parse()
    assert reply.object == "chat.completion" and reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    entry = stack.audit(raw.headers["x-request-id"])
    assert entry["model"] == "small" and entry["status"] == 200 and entry["key_id"]
    assert entry["prompt_tokens"] == reply.usage.prompt_tokens
    assert entry["completion_tokens"] == reply.usage.completion_tokens


def test_chat_stream_without_usage_hides_the_gateways_usage_chunk(stack: Stack) -> None:
    raw = stack.client().chat.completions.with_raw_response.create(
        model="small", messages=MESSAGES, max_tokens=6, temperature=0, stream=True
    )
    chunks = list(raw.parse())
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)  # the usage-only chunk was stripped
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text and chunks[-1].choices[0].finish_reason == "length"
    entry = stack.audit(raw.headers["x-request-id"])
    assert entry["prompt_tokens"] > 0 and entry["completion_tokens"] == 6


def test_chat_stream_with_usage_keeps_it(stack: Stack) -> None:
    stream = stack.client().chat.completions.create(
        model="small",
        messages=MESSAGES,
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 5


def test_completions_streamed_and_not(stack: Stack) -> None:
    client = stack.client()
    reply = client.completions.create(
        model="small", prompt="Once upon a", max_tokens=4, temperature=0
    )
    assert reply.choices[0].text and reply.usage is not None and reply.usage.completion_tokens == 4
    stream = client.completions.create(
        model="small", prompt="Once upon a", max_tokens=4, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in stream if c.choices) == reply.choices[0].text


def test_embeddings_are_relayed(stack: Stack) -> None:
    reply = stack.client().embeddings.create(model="emb", input=["red", "a green apple"])
    assert [len(d.embedding) for d in reply.data] == [384, 384]
    assert reply.usage.prompt_tokens > 0


def test_keys_scopes_and_allow_lists_apply_at_the_gateway(stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError):
        stack.client("sk-llmeco-wrong").models.list()
    with pytest.raises(openai.PermissionDeniedError, match="embeddings"):
        stack.client("chat-only").embeddings.create(model="emb", input="red")
    with pytest.raises(openai.PermissionDeniedError, match="may not use model"):
        stack.client("emb-only").chat.completions.create(model="small", messages=MESSAGES)
    assert [m.id for m in stack.client("emb-only").models.list().data] == ["emb"]


def test_rpm_limit_applies_at_the_gateway(stack: Stack) -> None:
    client = stack.client("rpm")
    for _ in range(2):
        client.chat.completions.create(model="small", messages=MESSAGES, max_tokens=1)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="small", messages=MESSAGES, max_tokens=1)


def test_a_daily_budget_runs_out_and_caps_max_tokens(stack: Stack) -> None:
    client = stack.client("budget")
    story = [{"role": "user", "content": "Write a long story about a dragon."}]
    replies = []
    for _ in range(6):
        try:
            reply = client.chat.completions.create(
                model="small", messages=story, max_tokens=60, temperature=0
            )
        except openai.RateLimitError as exc:
            assert "budget" in str(exc).lower()
            break
        assert reply.usage is not None
        replies.append(reply.usage)
    else:
        pytest.fail("the budget never ran out")
    usage = httpx.get(
        stack.gateway.url + "/v1/usage",
        headers={"Authorization": f"Bearer {stack.keys['budget']}"},
        timeout=30,
    ).json()
    spent = sum(u.total_tokens for u in replies)
    assert usage["total_tokens"] == spent and usage["remaining_tokens"] == 0
    assert len(replies) >= 2 and replies[0].completion_tokens == 60
    assert replies[-1].completion_tokens < 60  # max_tokens capped at the budget left
    # Only the last prompt's tokens can go over: they are known once the upstream answers.
    assert spent - 120 <= replies[-1].prompt_tokens


def test_usage_is_counted_from_the_upstream(stack: Stack) -> None:
    client = stack.client("counted")
    reply = client.chat.completions.create(model="small", messages=MESSAGES, max_tokens=3)
    raw = client.chat.completions.with_raw_response.create(
        model="small", messages=MESSAGES, max_tokens=4, stream=True
    )
    list(raw.parse())
    entry = stack.audit(raw.headers["x-request-id"])
    usage = httpx.get(
        stack.gateway.url + "/v1/usage",
        headers={"Authorization": f"Bearer {stack.keys['counted']}"},
        timeout=30,
    ).json()
    assert reply.usage is not None
    streamed = entry["prompt_tokens"] + entry["completion_tokens"]
    assert usage["total_tokens"] == reply.usage.total_tokens + streamed
    assert usage["requests"] == 3  # the two chats and this /v1/usage call
