"""Must-show 2: no key can grant or raise what it does not hold, or act for another key.

Every admin action is tried with a lesser key — a non-admin key, and a limited admin — and
the store is checked afterwards to show nothing changed.
"""

from __future__ import annotations

from typing import Any

import httpx
from gov_helpers import bearer, make_key

from llmeco.governance.keys import ApiKey
from llmeco.server.auth import Authenticator


async def _call(
    client: httpx.AsyncClient, token: str, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=bearer(token))


async def test_a_non_admin_key_cannot_administer(
    gclient: httpx.AsyncClient, auth: Authenticator, root: tuple[ApiKey, str]
) -> None:
    me, token = make_key(auth, ["chat", "models"], rpm=10, name="user")
    other, _ = make_key(auth, ["chat"], name="other")
    before = {k.id: k for k in auth.keys.all_keys(include_revoked=True)}
    attempts = [
        ("POST", "/admin/keys", {"name": "mine", "scopes": ["chat"]}),  # create any key
        ("POST", "/admin/keys", {"name": "boss", "scopes": ["admin"]}),  # create an admin key
        ("PATCH", f"/admin/keys/{me.id}", {"rpm": 1000}),  # raise its own limits
        ("PATCH", f"/admin/keys/{me.id}", {"rpm": None}),  # remove its own limit
        ("DELETE", f"/admin/keys/{other.id}", None),  # revoke another key
        ("GET", f"/admin/keys/{other.id}", None),  # read another key
        ("GET", "/admin/keys", None),
        ("GET", "/admin/usage", None),  # read others' usage
        ("GET", f"/admin/usage?key_id={other.id}", None),
        ("GET", f"/admin/usage?key_id={root[0].id}", None),
        ("PUT", "/admin/aliases/default", {"model": "fake-model"}),  # move an alias
        ("GET", "/admin/aliases", None),
    ]
    for method, path, body in attempts:
        r = await _call(gclient, token, method, path, body)
        assert r.status_code == 403, (method, path, r.text)
        assert "admin" in r.json()["error"]["message"]
    # /v1/usage shows its own usage only; it takes no key parameter to ask for another's.
    r = await _call(gclient, token, "GET", f"/v1/usage?key_id={other.id}")
    assert r.status_code == 200 and r.json()["key_id"] == me.id
    assert {k.id: k for k in auth.keys.all_keys(include_revoked=True)} == before
    assert auth.keys.get(me.id).rpm == 10


async def test_a_limited_admin_cannot_exceed_itself(
    gclient: httpx.AsyncClient, auth: Authenticator, root: tuple[ApiKey, str]
) -> None:
    boss, token = make_key(
        auth,
        ["admin", "chat"],
        models=["fake-model"],
        rpm=1000,
        tpm=1000,
        daily_tokens=500,
        name="limited admin",
    )
    peer, _ = make_key(auth, ["chat", "embeddings"], name="stronger peer")
    ok = {
        "name": "sub",
        "scopes": ["chat"],
        "models": ["fake-model"],
        "rpm": 5,
        "tpm": 100,
        "daily_tokens": 100,
    }
    too_much = {
        "a scope it lacks": {**ok, "scopes": ["chat", "embeddings"]},
        "every model": {**ok, "models": []},
        "another model": {**ok, "models": ["fake-model", "other"]},
        "no rpm limit": {k: v for k, v in ok.items() if k != "rpm"},
        "higher rpm": {**ok, "rpm": 1001},
        "higher tpm": {**ok, "tpm": 1001},
        "no daily budget": {**ok, "daily_tokens": None},
        "bigger budget": {**ok, "daily_tokens": 501},
    }
    for what, body in too_much.items():
        r = await _call(gclient, token, "POST", "/admin/keys", body)
        assert r.status_code == 403, what
        assert "cannot grant more than it holds" in r.json()["error"]["message"], what
    created = await _call(gclient, token, "POST", "/admin/keys", ok)
    assert created.status_code == 201
    sub = created.json()
    assert sub["created_by"] == boss.id and sub["key"].startswith("sk-llmeco-")
    # Its own limits: lowering is fine, raising or removing is not.
    for change in ({"rpm": 1001}, {"daily_tokens": None}, {"tpm": 5000}):
        r = await _call(gclient, token, "PATCH", f"/admin/keys/{boss.id}", change)
        assert r.status_code == 403, change
    lower = await _call(gclient, token, "PATCH", f"/admin/keys/{boss.id}", {"rpm": 999})
    assert lower.is_success
    # It cannot touch keys that hold more than it does: the root key or a stronger peer.
    for target in (root[0].id, peer.id):
        for method, path, body in (
            ("DELETE", f"/admin/keys/{target}", None),
            ("PATCH", f"/admin/keys/{target}", {"rpm": 1}),
            ("GET", f"/admin/keys/{target}", None),
            ("GET", f"/admin/usage?key_id={target}", None),
        ):
            r = await _call(gclient, token, method, path, body)
            assert r.status_code == 403, (method, target)
    listed = {k["id"] for k in (await _call(gclient, token, "GET", "/admin/keys")).json()["data"]}
    assert listed == {boss.id, sub["id"]}
    usage = (await _call(gclient, token, "GET", "/admin/usage")).json()["data"]
    assert {u["key_id"] for u in usage} == {boss.id, sub["id"]}
    # It may manage what it created, and the new key really is bounded.
    assert (await _call(gclient, token, "PATCH", f"/admin/keys/{sub['id']}", {"rpm": 2})).is_success
    r = await _call(gclient, sub["key"], "POST", "/admin/keys", {"name": "x", "scopes": ["chat"]})
    assert r.status_code == 403
    assert (await _call(gclient, token, "DELETE", f"/admin/keys/{sub['id']}")).is_success
    assert auth.keys.get(root[0].id).status() == "active"
    assert auth.keys.get(peer.id).rpm is None
    assert auth.keys.get(boss.id).rpm == 999


async def test_a_limited_admin_cannot_move_aliases_onto_models_it_may_not_use(
    gclient: httpx.AsyncClient, auth: Authenticator, root: tuple[ApiKey, str]
) -> None:
    _, token = make_key(auth, ["admin"], models=["other-model"])
    r = await _call(gclient, token, "PUT", "/admin/aliases/smol", {"model": "fake-model"})
    assert r.status_code == 403
    r = await _call(gclient, root[1], "PUT", "/admin/aliases/smol", {"model": "fake-model"})
    assert r.status_code == 200
    listed = await _call(gclient, root[1], "GET", "/admin/aliases")
    assert {"alias": "smol", "model": "fake-model"} in listed.json()
