"""The plugin registry: built-ins and third-party plugins through the same hooks, overrides,
failures isolated, the allow-list, and each kind of extension reaching the code that uses it."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from fastapi import FastAPI

from llmeco.errors import ConfigError
from llmeco.plugins import BUILTIN_PLUGINS, Registry, parse_allow_list, set_registry
from llmeco.settings import Settings

PLUGIN = """
from pathlib import Path
from fastapi import APIRouter
from pydantic import BaseModel
from typing import Literal
from llmeco.plugins import (AppSpec, BackendSpec, ModelLoaderSpec, ReaderSpec,
    RedactionRuleSpec, RouteScope, ToolSpec, hookimpl)
from llmeco.apps.agents.profile import ToolOptions

router = APIRouter()

@router.get("/v1/apps/mine/ping")
async def ping() -> dict[str, str]:
    return {"pong": "yes"}

class EchoOptions(ToolOptions):
    kind: Literal["echo"]
    loud: bool = False

@hookimpl
def register_readers():
    return [ReaderSpec("shout", (".md", ".shout"),
                       lambda p: [{"text": p.read_text().upper(), "source": p.name}])]

@hookimpl
def register_redaction_rules():
    import re
    return [RedactionRuleSpec("MRN", "[MRN]",
            lambda t: [m.span() for m in re.finditer(r"MRN\\d{6}", t)], priority=5)]

@hookimpl
def register_tools():
    return [ToolSpec("echo", EchoOptions, lambda o: ("echo-tool", o.loud))]

@hookimpl
def register_backends():
    return [BackendSpec("fake", lambda ref, settings, name: ("fake-engine", ref, name))]

@hookimpl
def register_model_loaders():
    def resolve(ref, settings, console):
        return ("mem-model", ref) if ref.startswith("mem://") else None
    return [ModelLoaderSpec("mem", resolve)]

@hookimpl
def register_apps():
    scope = RouteScope("GET", "/v1/apps/mine/", "models")
    return [AppSpec("mine", routers=(router,), scopes=(scope,))]
"""


def _ep(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group="llmeco")


@pytest.fixture()
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "my_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "bad_import.py").write_text("raise ImportError('missing dependency xyz')\n")
    (tmp_path / "bad_hook.py").write_text(
        "from llmeco.plugins import hookimpl\n"
        "@hookimpl\ndef register_readers():\n    raise ValueError('boom')\n"
        "@hookimpl\ndef register_eval_tasks():\n    return ['not a spec']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("my_plugin", "bad_import", "bad_hook"):
        sys.modules.pop(name, None)
    return tmp_path


@pytest.fixture()
def registry(plugin_dir: Path) -> Iterator[Registry]:
    reg = Registry(
        None,
        entry_points=[
            _ep("mine", "my_plugin"),
            _ep("bad-import", "bad_import"),
            _ep("bad-hook", "bad_hook"),
        ],
    )
    old = set_registry(reg)
    yield reg
    set_registry(old)


def test_builtins_register_through_the_hooks() -> None:
    reg = Registry(None, entry_points=[])
    assert {".md", ".pdf", ".jsonl"} <= set(reg.readers())
    assert [x.name for x in reg.model_loaders()] == ["default", "local"]
    assert set(reg.backends()) == {"native"}
    assert {"perplexity", "multiple_choice", "retrieval"} <= set(reg.eval_tasks())
    assert {"kb_search", "calculator", "classify"} <= set(reg.tools())
    assert {"EMAIL", "CARD", "PHONE"} <= {r.kind for r in reg.redaction_rules()}
    assert reg.app_sources() == {
        "tasks": "llmeco.server.plugin",
        "write": "llmeco.server.plugin",
        "support": "llmeco.server.plugin",
        "voice": "llmeco.server.plugin",
        "kb": "llmeco.server.plugin",
    }
    assert all(p.builtin and p.loaded and p.error is None for p in reg.plugins)


def test_builtins_are_imported_only_when_their_hook_is_used() -> None:
    reg = Registry(None, entry_points=[])
    reg.readers()
    loaded = {p.name for p in reg.plugins if p.hooks}
    assert loaded == {"llmeco.data.plugin"}


def test_a_plugin_extends_and_overrides_and_failures_stay_isolated(registry: Registry) -> None:
    readers = registry.readers()
    assert readers[".shout"].name == "shout" and readers[".md"].name == "shout"  # override
    assert readers[".pdf"].name == "pdf"  # built-ins it does not touch stay
    info = {p.name: p for p in registry.plugins}
    assert info["bad-import"].loaded is False
    assert "ImportError: missing dependency xyz" in (info["bad-import"].error or "")
    registry.load_all()
    assert "register_readers failed: ValueError: boom" in (info["bad-hook"].error or "")
    assert "returned a str, expected EvalTaskSpec" in (info["bad-hook"].error or "")
    assert "perplexity" in registry.eval_tasks()  # the bad plugin took nothing else down
    assert info["mine"].hooks["register_readers"] == 1


def test_allow_list() -> None:
    assert parse_allow_list(None) is None
    assert parse_allow_list(" a, b ,") == frozenset({"a", "b"})
    reg = Registry(frozenset({"other"}), entry_points=[_ep("mine", "my_plugin_not_imported")])
    (mine,) = [p for p in reg.plugins if p.name == "mine"]
    assert (mine.allowed, mine.loaded, mine.error) == (False, False, "not in LLMECO_PLUGINS")
    assert set(BUILTIN_PLUGINS) <= {p.name for p in reg.plugins if p.loaded}


def test_plugin_reader_redaction_tool_backend_and_loader_reach_their_users(
    registry: Registry, tmp_path: Path
) -> None:
    from llmeco.apps.agents.profile import AgentProfile
    from llmeco.data.readers import read_file
    from llmeco.governance.redact import redact
    from llmeco.modeling.load import resolve_model
    from llmeco.server.runtime import engine_backend

    doc = tmp_path / "a.shout"
    doc.write_text("hello")
    assert read_file(doc) == [{"text": "HELLO", "source": "a.shout"}]
    assert redact("patient MRN123456, mail x@y.org") == "patient [MRN], mail [EMAIL]"
    profile = AgentProfile.model_validate(
        {"name": "a", "tools": [{"kind": "echo", "loud": True}, {"kind": "calculator"}]}
    )
    assert [t.kind for t in profile.tools] == ["echo", "calculator"]
    assert registry.tools()["echo"].build(profile.tools[0]) == ("echo-tool", True)
    with pytest.raises(ValueError, match=r"entry 0: unknown tool kind 'nope'; known kinds: .*echo"):
        AgentProfile.model_validate({"name": "a", "tools": [{"kind": "nope"}]})
    with pytest.raises(ValueError, match=r"entry 0 \(echo\): loud"):
        AgentProfile.model_validate({"name": "a", "tools": [{"kind": "echo", "loud": "x"}]})
    settings = Settings(engine_backend="fake")
    assert engine_backend(settings).load("m", settings, None) == ("fake-engine", "m", None)
    with pytest.raises(ConfigError, match="registered: fake, native"):
        engine_backend(Settings(engine_backend="vllm"))
    assert resolve_model("mem://x", Settings()) == ("mem-model", "mem://x")


TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture()
def helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server tests' fake engine and the scope test's route walker on sys.path."""
    monkeypatch.syspath_prepend(str(TESTS / "server"))
    monkeypatch.syspath_prepend(str(TESTS / "governance"))


def _paths(app: FastAPI) -> set[str]:
    from test_scopes import route_paths

    return route_paths(app.routes)


def test_build_app_mounts_exactly_the_registered_apps(registry: Registry, helpers: None) -> None:
    from fake_engine import FakeEngine

    from llmeco.governance.scopes import requirement
    from llmeco.server.app import build_app

    paths = _paths(build_app(Settings(), {"m": FakeEngine()}))
    assert {"/v1/apps/mine/ping", "/v1/tasks/translate", "/v1/feedback"} <= paths
    assert requirement("/v1/apps/mine/ping", "GET").scopes == {"models"}
    assert requirement("/v1/apps/mine/ping", "POST").scopes == {"admin"}  # method not declared

    without_server_apps = {k: v for k, v in BUILTIN_PLUGINS.items() if k != "llmeco.server.plugin"}
    set_registry(Registry(None, builtins=without_server_apps, entry_points=[]))
    paths = _paths(build_app(Settings(), {"m": FakeEngine()}))
    assert not any(p.startswith(("/v1/tasks", "/v1/apps", "/v1/feedback")) for p in paths)
    assert "/v1/chat/completions" in paths  # the OpenAI routes are the server's own


def test_a_plugin_app_cannot_rescope_core_or_admin_routes(plugin_dir: Path, helpers: None) -> None:
    from fake_engine import FakeEngine

    from llmeco.server.app import build_app

    (plugin_dir / "grabby.py").write_text(
        "from llmeco.plugins import AppSpec, RouteScope, hookimpl\n"
        "@hookimpl\ndef register_apps():\n"
        "    return [AppSpec('grab', scopes=(RouteScope('*', '/admin/keys', 'chat'),))]\n"
    )
    old = set_registry(Registry(None, entry_points=[_ep("grabby", "grabby")]))
    try:
        with pytest.raises(ConfigError, match="may not set the scope of /admin/keys"):
            build_app(Settings(), {"m": FakeEngine()})
    finally:
        set_registry(old)
