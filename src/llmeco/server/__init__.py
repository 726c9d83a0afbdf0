"""The HTTP server: an OpenAI-compatible API over :class:`~llmeco.engine.protocol.EngineClient`."""

from llmeco.server.app import build_app

__all__ = ["build_app"]
