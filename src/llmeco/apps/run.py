"""Running a :class:`~llmeco.apps.spec.PromptSpec` directly on an engine (scripts, evaluation).

The server runs specs through its own generation path (disconnects, metrics, limits); this is
the plain path for everything else.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from llmeco.apps.spec import PromptSpec
from llmeco.engine.protocol import EngineClient
from llmeco.engine.request import ChatPrompt


async def stream_text(engine: EngineClient, spec: PromptSpec) -> AsyncIterator[str]:
    """The generated text of ``spec`` piece by piece (first choice only)."""
    ids = engine.encode(ChatPrompt(spec.messages))
    async for out in engine.generate(ids, spec.params, f"app-{uuid.uuid4().hex}"):
        for delta in out.deltas:
            if delta.index == 0 and delta.text:
                yield delta.text


async def run(engine: EngineClient, spec: PromptSpec) -> Any:
    """Run ``spec`` to the end and return its parsed result."""
    parts = [piece async for piece in stream_text(engine, spec)]
    return spec.parse("".join(parts))
