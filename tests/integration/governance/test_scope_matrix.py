"""Must-show 1: every route × every kind of key gives the expected status.

The expectations are written out by hand (not derived from ``scopes.ROUTES``), so a change
to the policy table has to change this matrix too.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from gov_helpers import bearer, chat_body, make_key

from llmeco.governance.keys import PREFIX, utc_now
from llmeco.server.auth import Authenticator

# Columns: the credentials each request carries.
KEYS = (
    "none",  # no Authorization header
    "garbage",  # Authorization: Bearer nope
    "wrong-secret",  # a real key id with another secret
    "chat",
    "completions",
    "embeddings",
    "models",
    "admin",  # only the admin scope
    "root",  # every scope, unlimited
    "revoked",  # every scope, revoked
    "expired",  # every scope, expired
    "wrong-model",  # chat/completions/embeddings/models, allowed only `other-model`
)

M = "fake-model"
# route → (method, path, body, expected status per column of KEYS)
MATRIX: dict[str, tuple[str, str, Any, str]] = {
    "list models": ("GET", "/v1/models", None, "401 401 401 200 200 200 200 403 200 401 401 200"),
    "get model": (
        "GET",
        f"/v1/models/{M}",
        None,
        "401 401 401 200 200 200 200 403 200 401 401 403",
    ),
    "get alias": (
        "GET",
        "/v1/models/default",
        None,
        "401 401 401 200 200 200 200 403 200 401 401 403",
    ),
    "chat": (
        "POST",
        "/v1/chat/completions",
        chat_body(max_tokens=4),
        "401 401 401 200 403 403 403 403 200 401 401 403",
    ),
    "chat stream": (
        "POST",
        "/v1/chat/completions",
        chat_body(max_tokens=4, stream=True),
        "401 401 401 200 403 403 403 403 200 401 401 403",
    ),
    "completions": (
        "POST",
        "/v1/completions",
        {"model": M, "prompt": "hi", "max_tokens": 4},
        "401 401 401 403 200 403 403 403 200 401 401 403",
    ),
    "embeddings": (
        "POST",
        "/v1/embeddings",
        {"model": "fake-embed", "input": "two words"},
        "401 401 401 403 403 200 403 403 200 401 401 403",
    ),
    "tokenize": (
        "POST",
        "/tokenize",
        {"model": M, "prompt": "hi"},
        "401 401 401 200 200 403 200 403 200 401 401 403",
    ),
    "detokenize": (
        "POST",
        "/detokenize",
        {"model": M, "tokens": [104, 105]},
        "401 401 401 200 200 403 200 403 200 401 401 403",
    ),
    "task": (
        "POST",
        "/v1/tasks/translate",
        {"model": M, "text": "hola", "target_language": "English", "max_tokens": 8},
        "401 401 401 200 403 403 403 403 200 401 401 403",
    ),
    "write": (
        "POST",
        "/v1/apps/write/continue",
        {"model": M, "text": "Once", "max_tokens": 8},
        "401 401 401 200 403 403 403 403 200 401 401 403",
    ),
    "mcp": (
        "POST",
        "/mcp",
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "matrix", "version": "1"},
            },
        },
        "401 401 401 200 403 403 403 403 200 401 401 200",
    ),
    "own usage": ("GET", "/v1/usage", None, "401 401 401 200 200 200 200 200 200 401 401 200"),
    "list keys": ("GET", "/admin/keys", None, "401 401 401 403 403 403 403 200 200 401 401 403"),
    "create key": (
        "POST",
        "/admin/keys",
        {"name": "made", "scopes": ["admin"]},
        "401 401 401 403 403 403 403 201 201 401 401 403",
    ),
    "usage": ("GET", "/admin/usage", None, "401 401 401 403 403 403 403 200 200 401 401 403"),
    "move alias": (
        "PUT",
        "/admin/aliases/smol",
        {"model": M},
        "401 401 401 403 403 403 403 200 200 401 401 403",
    ),
    "unlisted route": (
        "GET",
        "/v1/unknown",
        None,
        "401 401 401 403 403 403 403 404 404 401 401 403",
    ),
    "health": ("GET", "/health", None, "200 200 200 200 200 200 200 200 200 200 200 200"),
    "ready": ("GET", "/ready", None, "200 200 200 200 200 200 200 200 200 200 200 200"),
    "metrics": ("GET", "/metrics", None, "200 200 200 200 200 200 200 200 200 200 200 200"),
    "page": ("GET", "/", None, "200 200 200 200 200 200 200 200 200 200 200 200"),
}


def credentials(auth: Authenticator) -> dict[str, dict[str, str]]:
    """Headers for each column of KEYS."""
    everything = ("chat", "completions", "embeddings", "models", "admin")
    tokens = {name: make_key(auth, [name], name=name)[1] for name in KEYS[3:8]}
    tokens["root"] = make_key(auth, everything, name="root")[1]
    revoked, tokens["revoked"] = make_key(auth, everything, name="revoked")
    auth.keys.revoke(revoked.id)
    past = utc_now() - timedelta(minutes=1)
    tokens["expired"] = make_key(auth, everything, expires_at=past, name="expired")[1]
    tokens["wrong-model"] = make_key(auth, everything[:4], models=["other-model"])[1]
    headers = {name: bearer(token) for name, token in tokens.items()}
    headers["none"] = {}
    headers["garbage"] = {"Authorization": "Bearer nope"}
    headers["wrong-secret"] = bearer(tokens["chat"][:-6] + "AAAAAA")
    return headers


async def test_scope_matrix(gapp: FastAPI, gclient: httpx.AsyncClient, auth: Authenticator) -> None:
    headers = credentials(auth)
    failures = []
    async with gapp.state.mcp.running():  # /mcp's session manager, as ServerRuntime.serve runs it
        for route, (method, path, body, expected) in MATRIX.items():
            for who, want in zip(KEYS, expected.split(), strict=True):
                r = await gclient.request(method, path, json=body, headers=headers[who])
                if r.status_code != int(want):
                    failures.append(
                        f"{route} as {who}: {r.status_code} (expected {want}) {r.text[:120]}"
                    )
                elif r.status_code in (401, 403):
                    err = r.json()["error"]
                    kind = "authentication_error" if r.status_code == 401 else "permission_error"
                    assert err["type"] == kind and err["message"], (route, who)
    assert not failures, "\n".join(failures)


async def test_model_list_shows_only_allowed_models(
    gclient: httpx.AsyncClient, auth: Authenticator
) -> None:
    _, token = make_key(auth, ["chat", "embeddings"], models=["default", "fake-embed"])
    listed = await gclient.get("/v1/models", headers=bearer(token))
    assert [m["id"] for m in listed.json()["data"]] == ["fake-model", "fake-embed"]
    r = await gclient.post(
        "/v1/chat/completions", json=chat_body(max_tokens=2), headers=bearer(token)
    )
    assert r.status_code == 200  # allowed through its alias
    _, narrow = make_key(auth, ["chat"], models=["fake-embed"])
    listed = await gclient.get("/v1/models", headers=bearer(narrow))
    assert [m["id"] for m in listed.json()["data"]] == ["fake-embed"]
    r = await gclient.post("/v1/chat/completions", json=chat_body(), headers=bearer(narrow))
    assert r.status_code == 403
    assert "may not use model" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "model"


async def test_revocation_through_the_api_applies_at_once(
    gclient: httpx.AsyncClient, auth: Authenticator, root: Any
) -> None:
    key, token = make_key(auth, ["chat"])
    assert (await gclient.get("/v1/usage", headers=bearer(token))).status_code == 200  # cached
    r = await gclient.delete(f"/admin/keys/{key.id}", headers=bearer(root[1]))
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    r = await gclient.get("/v1/usage", headers=bearer(token))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


async def test_key_never_reaches_logs_or_error_bodies(
    gclient: httpx.AsyncClient, auth: Authenticator
) -> None:
    from llmeco.observability.logging import configure_logging

    key, token = make_key(auth, ["chat"])
    # The secret is everything after "sk-llmeco-<id>-"; it may itself contain "-".
    secret = token.removeprefix(PREFIX).split("-", 1)[1]
    assert len(secret) >= 40
    root_logger = logging.getLogger()
    saved = (root_logger.handlers[:], root_logger.level)
    out = io.StringIO()
    configure_logging("DEBUG", stream=out)
    try:
        bodies = []
        for headers in (
            bearer(token),
            bearer(token[:-3] + "xyz"),
            {"Authorization": token},  # no scheme
            bearer(token + "extra"),
        ):
            for path in ("/v1/chat/completions", "/admin/keys"):
                r = await gclient.post(path, json=chat_body(max_tokens=2), headers=headers)
                bodies.append(r.text)
    finally:
        root_logger.handlers[:], _ = saved
        root_logger.setLevel(saved[1])
    logged = out.getvalue()
    lines = [json.loads(line) for line in logged.splitlines()]
    assert len([x for x in lines if x.get("status")]) == 8  # one access line per request
    assert any(key.id in b for b in bodies)  # errors name the key id …
    for text in (logged, *bodies):
        assert secret not in text and secret[:12] not in text  # … never its secret
