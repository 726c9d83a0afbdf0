"""llmeco's extension system: hook specs, spec types and the plugin registry.

Write a plugin::

    from llmeco.plugins import hookimpl, ReaderSpec

    @hookimpl
    def register_readers() -> list[ReaderSpec]:
        return [ReaderSpec("org", (".org",), read_org)]

and declare it in your package's ``pyproject.toml``::

    [project.entry-points.llmeco]
    org = "my_package.plugin"

``llmeco plugins list`` shows what is loaded; ``LLMECO_PLUGINS=org,other`` loads only those
(built-ins always load). ``examples/plugins/`` holds a complete template package.
"""

from llmeco.plugins.hookspecs import hookimpl
from llmeco.plugins.manager import (
    BUILTIN_PLUGINS,
    ENTRY_POINT_GROUP,
    PluginInfo,
    Registry,
    get_registry,
    parse_allow_list,
    set_registry,
)
from llmeco.plugins.specs import (
    AppSpec,
    BackendSpec,
    EvalTaskSpec,
    ModelLoaderSpec,
    ReaderSpec,
    RedactionRuleSpec,
    RouteScope,
    ToolSpec,
)

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "AppSpec",
    "BackendSpec",
    "EvalTaskSpec",
    "ModelLoaderSpec",
    "PluginInfo",
    "ReaderSpec",
    "RedactionRuleSpec",
    "Registry",
    "RouteScope",
    "ToolSpec",
    "get_registry",
    "hookimpl",
    "parse_allow_list",
    "set_registry",
]
