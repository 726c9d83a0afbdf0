"""The hooks a plugin may implement, one per kind of extension.

A plugin is a module with functions decorated with :data:`hookimpl` whose names are the
hooks below; each returns a list of the matching spec (:mod:`llmeco.plugins.specs`). llmeco
finds plugins through the entry-point group ``llmeco`` (``[project.entry-points.llmeco]
NAME = "package.module"``); its own readers, loaders, backends, tasks, apps, tools and
redaction rules are registered by built-in plugin modules through these same hooks.
"""

from __future__ import annotations

import pluggy

from llmeco.plugins.specs import (
    AppSpec,
    BackendSpec,
    EvalTaskSpec,
    ModelLoaderSpec,
    ReaderSpec,
    RedactionRuleSpec,
    ToolSpec,
)

PROJECT = "llmeco"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate a plugin's hook functions with this.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_model_loaders() -> list[ModelLoaderSpec]:  # type: ignore[empty-body]
    """Model reference kinds this plugin resolves to a local model."""


@hookspec
def register_backends() -> list[BackendSpec]:  # type: ignore[empty-body]
    """Engine backends (``LLMECO_ENGINE_BACKEND``)."""


@hookspec
def register_readers() -> list[ReaderSpec]:  # type: ignore[empty-body]
    """File formats this plugin reads into records."""


@hookspec
def register_eval_tasks() -> list[EvalTaskSpec]:  # type: ignore[empty-body]
    """Evaluation task types suites may name."""


@hookspec
def register_apps() -> list[AppSpec]:  # type: ignore[empty-body]
    """Applications: routes, their scopes and chat backends for model-name prefixes."""


@hookspec
def register_tools() -> list[ToolSpec]:  # type: ignore[empty-body]
    """Tool kinds agent profiles may list."""


@hookspec
def register_redaction_rules() -> list[RedactionRuleSpec]:  # type: ignore[empty-body]
    """Detectors the redactor runs beside the built-in ones."""
