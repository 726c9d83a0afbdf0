"""The client cannot drift from the server: its route table is checked against the app's
OpenAPI schema (fake engine, auth on, hot swap on, so every built-in route is there).

A server route with no client method, a client method whose route is gone, a request body
whose schema, fields or required fields changed, a query parameter the server no longer
takes, or a response field the client reads that the server no longer sends: each fails
:func:`drift`, naming the route. The last tests plant such changes in the schema and check
that they are caught, so the check cannot pass by accident.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest
from fake_engine import FakeEngine
from gov_helpers import FakeEmbedder
from pydantic import BaseModel

from llmeco.client import ROUTES, AsyncClient, Client
from llmeco.client._client import Endpoint
from llmeco.client._core import Route

#: Server routes the client deliberately has no method for, with the reason. A key ending
#: in "/" is a prefix.
EXCLUDED: dict[str, str] = {
    "/v1/chat/completions": "OpenAI route: use the openai SDK (base_url=<server>/v1)",
    "/v1/completions": "OpenAI route: use the openai SDK",
    "/v1/embeddings": "OpenAI route: use the openai SDK",
    "/v1/models": "OpenAI route: use the openai SDK",
    "/v1/models/{model}": "OpenAI route: use the openai SDK",
    "/v1/audio/": "OpenAI audio routes (transcriptions, translations, speech, voices)",
    "/mcp": "MCP: spoken by MCP clients (not in the OpenAPI schema anyway)",
    "/metrics": "Prometheus scrape target (not in the schema)",
    "/docs": "Swagger UI",
    "/redoc": "ReDoc",
    "/openapi.json": "the schema itself",
    # Plugin apps own their clients (their packages ship them); only the built-in apps
    # below are the core client's.
    "/v1/apps/": "plugin-provided apps (learn, clinical, explain, …): their packages' clients",
}
#: Built-in apps under /v1/apps/ that the client does cover.
BUILTIN_APPS = frozenset({"/v1/apps/write/{action}", "/v1/apps/voice/{kb}"})

HTTP_METHODS = frozenset({"get", "post", "put", "patch", "delete"})


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The OpenAPI schema of the full app: auth (admin routes), hot swap (model routes)."""
    from llmeco.server import build_app
    from llmeco.server.auth import Authenticator
    from llmeco.server.hotswap import ModelFollower
    from llmeco.settings import Settings

    settings = Settings(home=tmp_path_factory.mktemp("home"), secret_key="test-secret")  # type: ignore[arg-type]
    auth = Authenticator.open(settings)
    fake = FakeEngine()
    follower = ModelFollower({}, lambda ref, name: fake, None, poll_seconds=0)
    app = build_app(
        settings,
        {fake.name: fake},
        FakeEmbedder(),  # type: ignore[arg-type]
        auth=auth,
        follower=follower,
    )
    return app.openapi()


def excluded(path: str) -> str | None:
    """Why the client has no method for ``path`` (None: it must have one)."""
    if path in BUILTIN_APPS:
        return None
    for key, reason in EXCLUDED.items():
        if path == key or (key.endswith("/") and path.startswith(key)):
            return reason
    return None


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ref = schema["$ref"]
    name = ref.rsplit("/", 1)[1]
    return name, spec["components"]["schemas"][name]


def _body_schemas(spec: dict[str, Any], op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The request body's schemas by name (several for an ``anyOf`` body)."""
    content = op.get("requestBody", {}).get("content", {})
    out: dict[str, dict[str, Any]] = {}
    for media in content.values():
        schema = media["schema"]
        for one in schema.get("anyOf", [schema]):
            name, resolved = _resolve(spec, one)
            # FastAPI qualifies a name two modules share: `llmeco__server__…__FeedbackRequest`
            out[name if name.startswith("Body_") else name.rsplit("__", 1)[-1]] = resolved
    return out


def _fields(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    """A client model's JSON field names and the required ones (by alias)."""
    names = {f.alias or n for n, f in model.model_fields.items()}
    required = {f.alias or n for n, f in model.model_fields.items() if f.is_required()}
    return names, required


def _response_model(route: Route) -> type[BaseModel] | None:
    """The client model of a route's answer (the item model for a list answer)."""
    response = route.response
    args = getattr(response, "__args__", None)
    if args:
        response = args[0]
    return response if isinstance(response, type) and issubclass(response, BaseModel) else None


def _response_schema(spec: dict[str, Any], op: dict[str, Any]) -> dict[str, Any] | None:
    for status in ("200", "201"):
        content = op.get("responses", {}).get(status, {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            continue
        if schema.get("type") == "array":
            schema = schema.get("items", {})
        if "$ref" in schema:
            return _resolve(spec, schema)[1]
    return None


def _check_body(name: str, route: Route, spec: dict[str, Any], op: dict[str, Any]) -> list[str]:
    where = f"{route.method} {route.path} ({name})"
    server = _body_schemas(spec, op)
    if not route.body:
        return [f"{where}: the server now takes a body {sorted(server)}"] if server else []
    if not server:
        return [f"{where}: the server takes no body any more"]
    problems = []
    generated = [s for s in server if s.startswith("Body_")]  # multipart forms
    if not generated and {m.__name__ for m in route.body} != set(server):
        names = sorted(m.__name__ for m in route.body)
        problems.append(f"{where}: body schemas {sorted(server)} != client {names}")
    pairs = (
        zip(route.body, server.values(), strict=False)
        if generated or len(server) == 1
        else ((m, server.get(m.__name__, {})) for m in route.body)
    )
    for model, schema in pairs:
        fields, required = _fields(model)
        props = set(schema.get("properties", {}))
        server_required = set(schema.get("required", []))
        if fields - props:
            problems.append(f"{where}: {model.__name__} sends fields the server lacks: "
                            f"{sorted(fields - props)}")  # fmt: skip
        if server_required != required:
            problems.append(f"{where}: {model.__name__} required fields: server "
                            f"{sorted(server_required)} != client {sorted(required)}")  # fmt: skip
        if props - fields - set(route.omits):
            problems.append(f"{where}: {model.__name__} lacks the server's fields "
                            f"{sorted(props - fields - set(route.omits))}")  # fmt: skip
    return problems


def _check_params(name: str, route: Route, op: dict[str, Any]) -> list[str]:
    where = f"{route.method} {route.path} ({name})"
    params = op.get("parameters", [])
    query = {p["name"] for p in params if p["in"] == "query"}
    required_query = {p["name"] for p in params if p["in"] == "query" and p.get("required")}
    problems = []
    if set(route.query) - query:
        problems.append(f"{where}: query parameters gone: {sorted(set(route.query) - query)}")
    if query - set(route.query):
        problems.append(f"{where}: new query parameters: {sorted(query - set(route.query))}")
    if required_query - set(route.query):
        problems.append(f"{where}: required query parameters {sorted(required_query)}")
    return problems


def _check_response(name: str, route: Route, spec: dict[str, Any], op: dict[str, Any]) -> list[str]:
    model = _response_model(route)
    schema = _response_schema(spec, op)
    if model is None or schema is None:
        return []
    where = f"{route.method} {route.path} ({name})"
    fields, _ = _fields(model)
    props = set(schema.get("properties", {}))
    server_required = set(schema.get("required", []))
    problems = []
    if fields - props:
        problems.append(f"{where}: response fields the server no longer sends: "
                        f"{sorted(fields - props)}")  # fmt: skip
    if server_required - fields:
        problems.append(f"{where}: response fields the client does not type: "
                        f"{sorted(server_required - fields)}")  # fmt: skip
    return problems


def drift(spec: dict[str, Any], routes: dict[str, Route] = ROUTES) -> list[str]:
    """Every difference between the server's schema and the client's route table."""
    server: dict[tuple[str, str], dict[str, Any]] = {}
    for path, ops in spec["paths"].items():
        if excluded(path) is None:
            for method, op in ops.items():
                if method in HTTP_METHODS:
                    server[method.upper(), path] = op
    client = {(r.method, r.path): name for name, r in routes.items()}
    problems = [
        f"{method} {path}: served, but the client has no method for it (add one to "
        "llmeco/client/_api.py, or exclude it here with a reason)"
        for method, path in sorted(server.keys() - client.keys())
    ]
    problems += [
        f"{method} {path} ({client[method, path]}): the server has no such route any more"
        for method, path in sorted(client.keys() - server.keys())
    ]
    for key in sorted(server.keys() & client.keys()):
        name, route, op = client[key], routes[client[key]], server[key]
        problems += _check_body(name, route, spec, op)
        problems += _check_params(name, route, op)
        problems += _check_response(name, route, spec, op)
    return problems


def test_the_client_covers_every_route_of_the_server(spec: dict[str, Any]) -> None:
    problems = drift(spec)
    assert not problems, "\n".join(problems)


def test_every_route_has_a_sync_and_an_async_method() -> None:
    for cls in (Client, AsyncClient):
        endpoints = {n for n in dir(cls) if isinstance(getattr(cls, n), Endpoint)}
        assert endpoints == set(ROUTES), (cls.__name__, endpoints ^ set(ROUTES))


def test_the_exclusions_are_real_routes_or_prefixes(spec: dict[str, Any]) -> None:
    """An exclusion for a route the server no longer has (and no prefix) is stale."""
    unschema = {"/mcp", "/metrics", "/docs", "/redoc", "/openapi.json"}  # served, not listed
    for key in EXCLUDED:
        if key.endswith("/") or key in unschema:
            continue
        assert key in spec["paths"], f"stale exclusion {key}"


def test_a_new_server_route_is_caught(spec: dict[str, Any]) -> None:
    changed = copy.deepcopy(spec)
    changed["paths"]["/v1/tasks/paraphrase"] = {"post": copy.deepcopy(
        spec["paths"]["/v1/tasks/correct"]["post"])}  # fmt: skip
    problems = drift(changed)
    assert any(p.startswith("POST /v1/tasks/paraphrase: served, but") for p in problems), problems


def test_a_removed_or_moved_route_is_caught(spec: dict[str, Any]) -> None:
    changed = copy.deepcopy(spec)
    del changed["paths"]["/admin/aliases/{alias}"]
    changed["paths"]["/v1/tasks/summarise"] = changed["paths"].pop("/v1/tasks/summarize")
    problems = drift(changed)
    assert any("PUT /admin/aliases/{alias} (set_alias): the server has no" in p for p in problems)
    assert any("/v1/tasks/summarize (summarize): the server has no" in p for p in problems)
    assert any("POST /v1/tasks/summarise: served, but" in p for p in problems)


def test_a_changed_request_body_is_caught(spec: dict[str, Any]) -> None:
    changed = copy.deepcopy(spec)
    schema = changed["components"]["schemas"]["TranslateRequest"]
    schema["required"].append("register")  # a new required field
    schema["properties"]["register"] = {"type": "string"}
    schema["properties"]["target"] = schema["properties"].pop("target_language")  # a rename
    problems = [p for p in drift(changed) if "(translate)" in p]
    assert any("sends fields the server lacks: ['target_language']" in p for p in problems)
    assert any("required fields" in p and "register" in p for p in problems)


def test_a_changed_query_or_response_is_caught(spec: dict[str, Any]) -> None:
    changed = copy.deepcopy(spec)
    op = changed["paths"]["/admin/handoffs"]["get"]
    op["parameters"] = [p for p in op["parameters"] if p["name"] != "kb"]
    del changed["components"]["schemas"]["KeyUsage"]["properties"]["remaining_tokens"]
    problems = drift(changed)
    assert any("(list_handoffs): query parameters gone: ['kb']" in p for p in problems)
    assert any("(usage): response fields the server no longer sends" in p for p in problems)


def test_the_client_imports_nothing_of_llmeco_but_errors() -> None:
    """In a fresh interpreter: no other llmeco module, no server, engine or torch (this also
    covers packages added after the import-linter contract was written)."""
    code = (
        "import sys, llmeco.client; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('llmeco', 'torch', 'fastapi', 'starlette', 'transformers'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    allowed = {"llmeco", "llmeco.errors"}
    assert {m for m in loaded if not m.startswith("llmeco.client")} == allowed, loaded
