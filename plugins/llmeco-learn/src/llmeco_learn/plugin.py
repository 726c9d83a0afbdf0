"""The learn app as an llmeco plugin (entry point ``llmeco: learn``)."""

from __future__ import annotations

from llmeco.plugins.hookspecs import hookimpl
from llmeco.plugins.specs import AppSpec, RouteScope


@hookimpl
def register_apps() -> list[AppSpec]:
    """The ``/v1/apps/learn`` routes, all under the ``chat`` scope."""
    from llmeco_learn.router import router

    return [
        AppSpec(
            name="learn",
            routers=(router,),
            scopes=(
                RouteScope("PUT", "/v1/apps/learn/learners/{learner_id}", "chat"),
                RouteScope("GET", "/v1/apps/learn/learners/{learner_id}", "chat"),
                RouteScope("POST", "/v1/apps/learn/recommend", "chat"),
                RouteScope("POST", "/v1/apps/learn/feedback", "chat"),
            ),
            description="Learning recommendations: learner profiles, a content library, "
            "next items by similarity to gaps and difficulty progression.",
        )
    ]
