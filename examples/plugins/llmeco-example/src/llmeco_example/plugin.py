"""The hook implementations llmeco calls (entry point ``llmeco: example``)."""

from __future__ import annotations

from llmeco.plugins import AppSpec, EvalTaskSpec, ReaderSpec, RouteScope, hookimpl


@hookimpl
def register_readers() -> list[ReaderSpec]:
    """Org-mode files."""
    from llmeco_example.reader import read_org

    return [ReaderSpec("org", (".org",), read_org, "Org-mode, headings kept")]


@hookimpl
def register_eval_tasks() -> list[EvalTaskSpec]:
    """The ``preference`` task type."""
    from llmeco_example.task import PreferenceConfig, run_preference

    return [
        EvalTaskSpec("preference", PreferenceConfig, run_preference, "pairwise preference accuracy")
    ]


@hookimpl
def register_apps() -> list[AppSpec]:
    """The headline app under ``/v1/apps/example/``, for keys with the ``chat`` scope."""
    from llmeco_example.app import router

    return [
        AppSpec(
            "example",
            routers=(router,),
            scopes=(RouteScope("POST", "/v1/apps/example/headline", "chat"),),
            description="one-line headlines",
        )
    ]
