"""The explanations app as an llmeco plugin (entry point ``explain`` in group ``llmeco``)."""

from __future__ import annotations

from llmeco.plugins import AppSpec, RouteScope, hookimpl


@hookimpl
def register_apps() -> list[AppSpec]:
    """``POST /v1/apps/explain``, which needs the ``chat`` scope (it runs models for the
    caller like chat does)."""
    from llmeco_explain.router import router

    return [
        AppSpec(
            name="explain",
            routers=(router,),
            scopes=(RouteScope("POST", "/v1/apps/explain", "chat"),),
            description="Explanations: input attributions (integrated gradients, occlusion) "
            "and per-token logprobs for classifications and generated answers",
        )
    ]
