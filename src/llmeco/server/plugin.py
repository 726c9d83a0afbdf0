"""The built-in applications, registered through the same hook as a plugin's apps.

``build_app`` mounts whatever the registry's apps bring (routers, chat backends); a test
checks that these come from the registry, so the built-ins have no second path.
"""

from __future__ import annotations

from llmeco.plugins import AppSpec, RouteScope, hookimpl
from llmeco.server.kb.router import router as kb_router
from llmeco.server.support.router import router as support_router
from llmeco.server.support.serving import SupportChat
from llmeco.server.tasks.router import router as tasks_router
from llmeco.server.voice.router import router as voice_router
from llmeco.server.write.router import router as write_router


@hookimpl
def register_apps() -> list[AppSpec]:
    """Task endpoints, the writing assistant, the support assistant, the voice desk and the
    knowledge-base API."""
    return [
        AppSpec(
            "tasks",
            routers=(tasks_router,),
            scopes=(RouteScope("*", "/v1/tasks/", "chat"),),
            description="translate, summarize, correct, classify, sentiment, moderate, extract",
        ),
        AppSpec(
            "write",
            routers=(write_router,),
            scopes=(RouteScope("*", "/v1/apps/write/", "chat"),),
            description="the writing assistant: outline, continue, rewrite, shorten, expand",
        ),
        AppSpec(
            "support",
            routers=(support_router,),
            scopes=(
                RouteScope("POST", "/v1/feedback", "chat"),
                RouteScope("GET", "/admin/handoffs", "admin"),
            ),
            chat_backends=(SupportChat(),),
            description="the support assistant over a knowledge base (model support:KB)",
        ),
        AppSpec(
            "voice",
            routers=(voice_router,),
            # and chat: the route checks it (speech in, the support desk, speech out)
            scopes=(RouteScope("*", "/v1/apps/voice/", "audio"),),
            description="the voice support desk: speech in, a support answer, speech out",
        ),
        AppSpec(
            "kb",
            routers=(kb_router,),
            # reading and searching is the retrieval half of ``support:<kb>`` chat: ``chat``
            # (and the key's model allow-list, as support:<kb>); changing a KB is ``admin``
            scopes=(
                RouteScope("GET", "/v1/kb", "chat"),
                RouteScope("GET", "/v1/kb/", "chat"),
                RouteScope("POST", "/v1/kb/{name}/search", "chat"),
                RouteScope("POST", "/v1/kb", "admin"),
                RouteScope("POST", "/v1/kb/", "admin"),
                RouteScope("DELETE", "/v1/kb/", "admin"),
            ),
            description="knowledge bases over HTTP: list, create, add documents, search, delete",
        ),
    ]
