"""The route → scope table covers every route, fails closed, and the grant rules refuse
anything a key does not itself hold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from llmeco.errors import InvalidRequest, PermissionDenied
from llmeco.governance.keys import utc_now
from llmeco.governance.scopes import (
    DEFAULT,
    Grant,
    check_can_grant,
    declared,
    excess,
    parse_scopes,
    requirement,
)


def route_paths(routes: list[Any], prefix: str = "") -> set[str]:
    """Every path an app serves (FastAPI >= 0.165 wraps included routers)."""
    paths: set[str] = set()
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            sub = str(getattr(getattr(route, "include_context", None), "prefix", "") or "")
            paths |= route_paths(inner.routes, prefix + sub)
        elif getattr(route, "path", None):
            paths.add(prefix + route.path)
    return paths


def test_every_route_of_the_app_declares_its_scope(gapp: FastAPI) -> None:
    paths = route_paths(gapp.routes)
    assert {"/admin/keys", "/v1/chat/completions", "/v1/usage", "/metrics", "/mcp"} <= paths
    undeclared = sorted(p for p in paths if not declared(p))
    assert not undeclared, f"add these routes to llmeco.governance.scopes.ROUTES: {undeclared}"
    for path in paths:
        if path.startswith("/admin"):
            assert requirement(path.replace("{key_id}", "x")).scopes == {"admin"}


@pytest.mark.parametrize(
    ("path", "public", "scopes"),
    [
        ("/health", True, set()),
        ("/metrics", True, set()),
        ("/", True, set()),
        ("/v1/chat/completions", False, {"chat"}),
        ("/v1/completions", False, {"completions"}),
        ("/v1/embeddings", False, {"embeddings"}),
        ("/v1/models/some/model", False, {"models", "chat", "completions", "embeddings", "audio"}),
        ("/v1/audio/transcriptions", False, {"audio"}),
        ("/v1/audio/speech", False, {"audio"}),
        ("/v1/apps/voice/handbook", False, {"audio"}),  # the route also checks chat
        ("/tokenize", False, {"models", "chat", "completions"}),
        ("/v1/tasks/translate", False, {"chat"}),
        ("/mcp", False, {"chat"}),
        ("/mcp/", False, {"admin"}),  # only the exact path is the MCP endpoint
        ("/admin/keys/abc", False, {"admin"}),
        ("/v1/usage", False, set()),
        ("/v1/something-new", False, {"admin"}),  # unlisted: fail closed
        ("/v1/chat/completions/", False, {"admin"}),
    ],
)
def test_requirements(path: str, public: bool, scopes: set[str]) -> None:
    req = requirement(path)
    assert req.public == public and req.scopes == scopes


def test_unknown_scopes_are_rejected() -> None:
    assert parse_scopes("Chat, models") == {"chat", "models"}
    with pytest.raises(InvalidRequest, match="superuser"):
        parse_scopes("chat,superuser")
    with pytest.raises(InvalidRequest):
        parse_scopes(" , ")
    assert DEFAULT.scopes == {"admin"}


def test_grants_never_exceed_the_granter() -> None:
    soon = utc_now() + timedelta(days=1)
    actor = Grant(
        scopes=frozenset({"admin", "chat"}),
        models=frozenset({"m1"}),
        rpm=10,
        tpm=1000,
        daily_tokens=500,
        expires_at=soon,
    )
    ok = Grant(
        scopes=frozenset({"chat"}),
        models=frozenset({"m1"}),
        rpm=5,
        tpm=1000,
        daily_tokens=100,
        expires_at=soon - timedelta(hours=1),
    )
    check_can_grant(actor, ok)
    bad = {
        "scope": Grant(**{**ok.__dict__, "scopes": frozenset({"chat", "embeddings"})}),
        "all models": Grant(**{**ok.__dict__, "models": frozenset()}),
        "other model": Grant(**{**ok.__dict__, "models": frozenset({"m1", "m2"})}),
        "unlimited rpm": Grant(**{**ok.__dict__, "rpm": None}),
        "more rpm": Grant(**{**ok.__dict__, "rpm": 11}),
        "more daily": Grant(**{**ok.__dict__, "daily_tokens": 501}),
        "no tpm": Grant(**{**ok.__dict__, "tpm": None}),
        "never expires": Grant(**{**ok.__dict__, "expires_at": None}),
        "later expiry": Grant(**{**ok.__dict__, "expires_at": soon + timedelta(seconds=1)}),
    }
    for what, grant in bad.items():
        assert len(excess(actor, grant)) == 1, what
        with pytest.raises(PermissionDenied, match="cannot grant more than it holds"):
            check_can_grant(actor, grant)
    root = Grant(scopes=frozenset({"admin", "chat", "embeddings"}))
    for grant in bad.values():
        check_can_grant(root, grant)  # an unlimited admin may grant all of it
