"""The built-in evaluation task types, registered through the same hook as a plugin's."""

from __future__ import annotations

from llmeco.evaluation.builtin_tasks import builtin_task_types
from llmeco.plugins import EvalTaskSpec, hookimpl


@hookimpl
def register_eval_tasks() -> list[EvalTaskSpec]:
    """perplexity, multiple_choice, classification, generation and retrieval."""
    return [EvalTaskSpec(name, t.config, t.run) for name, t in builtin_task_types().items()]
