"""Finding, loading and querying plugins: one process-wide registry built on pluggy.

Built-in plugin modules are loaded first, by name (llmeco's own readers, model loaders,
backends, eval tasks, redaction rules, tools and apps live in them); then every entry point
of the group ``llmeco`` that ``LLMECO_PLUGINS`` allows. A plugin that fails to import, or
whose hook raises, is recorded with its error (``llmeco plugins list`` shows it, the server
logs it) and left out; everything else keeps working. Where a plugin registers a name a
built-in also has (a reader suffix, a task type, a backend, a tool kind, an app name), the
plugin's entry wins: that is how a deployment replaces a built-in.

Why pluggy: it is the hook system pytest, tox and datasette use; it validates that a hook
implementation's name and arguments match a spec, which catches a misspelt hook at load
time instead of silently never calling it.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, TypeVar

import pluggy

from llmeco.plugins import hookspecs
from llmeco.plugins.specs import (
    AppSpec,
    BackendSpec,
    EvalTaskSpec,
    ModelLoaderSpec,
    ReaderSpec,
    RedactionRuleSpec,
    ToolSpec,
)

log = logging.getLogger(__name__)

#: The entry-point group third-party plugins register under.
ENTRY_POINT_GROUP = "llmeco"

#: llmeco's own plugin modules and the hooks each implements. They always load (whatever
#: ``LLMECO_PLUGINS`` says), each on the first use of one of its hooks, so reading a file
#: does not import the server.
BUILTIN_PLUGINS: dict[str, tuple[str, ...]] = {
    "llmeco.data.plugin": ("register_readers",),
    "llmeco.modeling.plugin": ("register_model_loaders",),
    "llmeco.engine.plugin": ("register_backends",),
    "llmeco.evaluation.plugin": ("register_eval_tasks",),
    "llmeco.governance.plugin": ("register_redaction_rules",),
    "llmeco.apps.agents.plugin": ("register_tools",),
    "llmeco.server.plugin": ("register_apps",),
}

HOOKS: tuple[str, ...] = (
    "register_model_loaders",
    "register_backends",
    "register_readers",
    "register_eval_tasks",
    "register_apps",
    "register_tools",
    "register_redaction_rules",
)

T = TypeVar("T")


@dataclass
class PluginInfo:
    """One plugin as ``llmeco plugins list`` shows it."""

    name: str
    module: str
    #: ``built-in``, or the distribution that declared the entry point (``name version``).
    source: str
    builtin: bool
    #: Hooks it implements and how many items each returned.
    hooks: dict[str, int] = field(default_factory=dict)
    #: Why it is not (fully) loaded: import error, hook error, or not allowed.
    error: str | None = None
    allowed: bool = True
    import_failed: bool = False

    @property
    def loaded(self) -> bool:
        """Imported and registered (a hook may still have failed: see ``error``)."""
        return self.allowed and not self.import_failed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "module": self.module,
            "source": self.source,
            "builtin": self.builtin,
            "allowed": self.allowed,
            "loaded": self.loaded,
            "hooks": dict(self.hooks),
            "error": self.error,
        }


def parse_allow_list(value: str | None) -> frozenset[str] | None:
    """``LLMECO_PLUGINS`` → the allowed entry-point names (None: every installed plugin)."""
    if value is None:
        return None
    return frozenset(part.strip() for part in value.split(",") if part.strip())


class Registry:
    """The loaded plugins and what they registered, collected once per hook."""

    def __init__(
        self,
        allow: frozenset[str] | None = None,
        *,
        builtins: dict[str, tuple[str, ...]] | None = None,
        entry_points: Iterable[metadata.EntryPoint] | None = None,
    ) -> None:
        self.allow = allow
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self._cache: dict[str, list[tuple[PluginInfo, Any]]] = {}
        # Re-entrant: a hook may log, and logging redacts through this registry.
        self._lock = threading.RLock()
        self._collecting: set[str] = set()
        self._pending = dict(BUILTIN_PLUGINS if builtins is None else builtins)
        for module in self._pending:
            info = PluginInfo(name=module, module=module, source="built-in", builtin=True)
            self.plugins.append(info)
        eps = entry_points if entry_points is not None else _entry_points()
        for ep in sorted(eps, key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            source = f"{dist.name} {dist.version}" if dist is not None else "entry point"
            info = PluginInfo(name=ep.name, module=ep.value, source=source, builtin=False)
            if allow is not None and ep.name not in allow:
                info.allowed = False
                info.error = "not in LLMECO_PLUGINS"
                self.plugins.append(info)
                continue
            self.plugins.append(info)
            self._register(info, ep.load)

    def _load_builtins(self, hook: str | None) -> None:
        """Import the built-in modules that implement ``hook`` (None: all) not yet loaded."""
        for module, hooks in list(self._pending.items()):
            if hook is None or hook in hooks:
                del self._pending[module]
                info = next(p for p in self.plugins if p.name == module)
                self._register(info, functools.partial(importlib.import_module, module))

    def _register(self, info: PluginInfo, load: Callable[[], Any]) -> None:
        try:
            plugin = load()
            self.pm.register(plugin, name=info.name)
        except Exception as exc:  # a broken plugin must not take the server down
            if info.builtin:
                raise  # llmeco's own code: a bug, not a plugin to skip
            info.error = f"{type(exc).__name__}: {exc}"
            info.import_failed = True
            log.warning("plugin %s (%s) failed to load: %s", info.name, info.module, info.error)
            return
        for hook in HOOKS:
            if hasattr(plugin, hook):
                info.hooks[hook] = 0

    def _collect(self, hook: str) -> list[tuple[PluginInfo, Any]]:
        """Every item ``hook`` returned, built-ins first, each with its plugin."""
        with self._lock:
            if hook in self._cache:
                return self._cache[hook]
            if hook in self._collecting:  # called again from inside one of its own hooks
                return []
            self._collecting.add(hook)
            try:
                return self._collect_now(hook)
            finally:
                self._collecting.discard(hook)

    def _collect_now(self, hook: str) -> list[tuple[PluginInfo, Any]]:
        self._load_builtins(hook)
        by_name = {p.name: p for p in self.plugins}
        out: list[tuple[PluginInfo, Any]] = []
        impls = getattr(self.pm.hook, hook).get_hookimpls()
        # Built-ins first, so that a plugin's entry of the same name replaces theirs.
        impls.sort(key=lambda impl: not by_name[impl.plugin_name].builtin)
        for impl in impls:
            info = by_name[impl.plugin_name]
            try:
                items = list(impl.function() or [])
            except Exception as exc:
                message = f"{hook} failed: {type(exc).__name__}: {exc}"
                info.error = message if info.error is None else f"{info.error}; {message}"
                log.warning("plugin %s: %s", info.name, message)
                continue
            info.hooks[hook] = len(items)
            out.extend((info, item) for item in items)
        self._cache[hook] = out
        return out

    def _by_key(self, hook: str, kind: type[T], key: Callable[[T], Iterable[str]]) -> dict[str, T]:
        table: dict[str, T] = {}
        for info, item in self._collect(hook):
            if not isinstance(item, kind):
                _bad_item(info, hook, item, kind)
                continue
            for k in key(item):
                table[k] = item  # later (third-party) entries replace built-ins
        return table

    def _items(self, hook: str, kind: type[T]) -> list[T]:
        out: list[T] = []
        for info, item in self._collect(hook):
            if isinstance(item, kind):
                out.append(item)
            else:
                _bad_item(info, hook, item, kind)
        return out

    def readers(self) -> dict[str, ReaderSpec]:
        """File suffix (``.md``) → the reader for it."""
        return self._by_key(
            "register_readers", ReaderSpec, lambda r: (s.lower() for s in r.suffixes)
        )

    def model_loaders(self) -> list[ModelLoaderSpec]:
        """Loaders in the order to ask them: third-party first, built-ins last."""
        loaders = self._items("register_model_loaders", ModelLoaderSpec)
        builtin = {
            id(item) for info, item in self._collect("register_model_loaders") if info.builtin
        }
        return [x for x in loaders if id(x) not in builtin] + [
            x for x in loaders if id(x) in builtin
        ]

    def backends(self) -> dict[str, BackendSpec]:
        """Engine backend name → spec."""
        return self._by_key("register_backends", BackendSpec, lambda b: (b.name,))

    def eval_tasks(self) -> dict[str, EvalTaskSpec]:
        """Suite task ``type`` → spec."""
        return self._by_key("register_eval_tasks", EvalTaskSpec, lambda t: (t.name,))

    def apps(self) -> list[AppSpec]:
        """Applications, one per name (a plugin's app replaces a built-in of the same name)."""
        return list(self._by_key("register_apps", AppSpec, lambda a: (a.name,)).values())

    def app_sources(self) -> dict[str, str]:
        """App name → the plugin that registered it (built-ins: their module)."""
        out: dict[str, str] = {}
        for info, item in self._collect("register_apps"):
            if isinstance(item, AppSpec):
                out[item.name] = info.name
        return out

    def tools(self) -> dict[str, ToolSpec]:
        """Tool kind → spec."""
        return self._by_key("register_tools", ToolSpec, lambda t: (t.kind,))

    def redaction_rules(self) -> list[RedactionRuleSpec]:
        """Every detector, ordered by priority (then registration)."""
        rules = self._items("register_redaction_rules", RedactionRuleSpec)
        return sorted(rules, key=lambda r: r.priority)

    def load_all(self) -> None:
        """Import every plugin and call every hook now, checking what each returned
        (``llmeco plugins list`` shows the counts and any errors)."""
        self._load_builtins(None)
        self.readers()
        self.model_loaders()
        self.backends()
        self.eval_tasks()
        self.apps()
        self.tools()
        self.redaction_rules()


def _bad_item(info: PluginInfo, hook: str, item: object, kind: type) -> None:
    message = f"{hook} returned a {type(item).__name__}, expected {kind.__name__}"
    if info.error is not None and message in info.error:
        return  # reported on an earlier call
    info.error = message if info.error is None else f"{info.error}; {message}"
    log.warning("plugin %s: %s", info.name, message)


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


_registry: Registry | None = None
_registry_lock = threading.RLock()
_building = threading.local()


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use with ``LLMECO_PLUGINS`` from settings."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                from llmeco.settings import Settings

                _building.active = True
                try:
                    _registry = Registry(parse_allow_list(Settings().plugins))
                finally:
                    _building.active = False
    return _registry


def registry_if_ready() -> Registry | None:
    """The registry, or None while this thread is still building it (a plugin that logs
    while loading reaches the redactor, which must not wait for itself)."""
    if _registry is None and getattr(_building, "active", False):
        return None
    return get_registry()


def set_registry(registry: Registry | None) -> Registry | None:
    """Replace the process-wide registry (tests; None reloads on next use); returns the old."""
    global _registry
    with _registry_lock:
        old, _registry = _registry, registry
    return old
