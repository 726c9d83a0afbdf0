"""``llmeco generate``: ask a model one question and stream its reply to the terminal.

The model runs in-process through the native engine (the same ``EngineClient`` the server
uses), so this is also the quickest end-to-end check that a model reference loads.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from llmeco.engine.request import Prompt, SamplingParams
    from llmeco.settings import Settings

#: C0/C1 control characters except newline and tab: model text must not drive the terminal.
_CONTROL = {c: None for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if chr(c) not in "\n\t"}


def terminal_safe(text: str) -> str:
    """``text`` without control characters (escape sequences, bells, carriage returns)."""
    return text.translate(_CONTROL)


def generate(
    prompt: Annotated[str, typer.Argument(help="What to ask the model; '-' reads stdin.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="'default', a .gguf file or a HF safetensors directory."
        ),
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens to generate.")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy (argmax).")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling probability mass.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible sampling.")] = None,
    system: Annotated[str | None, typer.Option(help="System message before the prompt.")] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Send the prompt as plain text, no chat template.")
    ] = False,
    stats: Annotated[
        bool, typer.Option("--stats", help="Print token count and speed to stderr.")
    ] = False,
) -> None:
    """Generate a reply from a model, streamed to the terminal as it is produced."""
    from llmeco.engine.request import ChatPrompt, SamplingParams
    from llmeco.settings import Settings

    settings = Settings()
    text = sys.stdin.read() if prompt == "-" else prompt
    request: Prompt
    if raw:
        request = text
    else:
        messages = [{"role": "system", "content": system}] if system else []
        request = ChatPrompt([*messages, {"role": "user", "content": text}])
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    asyncio.run(_stream(model or settings.default_model, settings, request, params, stats))


async def _stream(
    ref: str, settings: Settings, prompt: Prompt, params: SamplingParams, stats: bool
) -> None:
    """Load the engine, print each delta as it arrives, and always shut the engine down."""
    from llmeco.engine.async_engine import AsyncEngine

    out = Console(highlight=False, markup=False, emoji=False, soft_wrap=True)
    engine = AsyncEngine.from_ref(ref, settings)
    try:
        started = time.perf_counter()
        tokens = 0
        ttft: float | None = None
        async for output in engine.generate(prompt, params, f"cli-{uuid.uuid4().hex}"):
            ttft = ttft if ttft is not None else output.time_to_first_token
            for delta in output.deltas:
                tokens += len(delta.token_ids)
                out.print(terminal_safe(delta.text), end="")
        out.print()
        if stats:
            elapsed = time.perf_counter() - started
            first = f", first token {ttft * 1000:.0f} ms" if ttft is not None else ""
            Console(stderr=True).print(
                f"{tokens} tokens in {elapsed:.2f} s ({tokens / elapsed:.1f} tok/s){first}",
                style="dim",
                markup=False,
                highlight=False,
            )
    finally:
        await engine.shutdown(timeout=0)
