"""The built-in engine backend, registered through the same hook as a plugin's."""

from __future__ import annotations

from llmeco.engine.protocol import EngineClient
from llmeco.plugins import BackendSpec, hookimpl
from llmeco.settings import Settings


def load_native(ref: str, settings: Settings, name: str | None) -> EngineClient:
    """llmeco's continuous-batching engine over the model ``ref`` resolves to."""
    from llmeco.engine.async_engine import AsyncEngine

    return AsyncEngine.from_ref(ref, settings, name=name)


@hookimpl
def register_backends() -> list[BackendSpec]:
    """``native``: the in-process engine (paged KV cache, continuous batching)."""
    return [BackendSpec("native", load_native, "llmeco's continuous-batching engine")]
