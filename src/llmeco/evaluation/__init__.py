"""Evaluation: suites of tasks over JSONL data, run through the engine (generation) and the
model itself (log-likelihood scoring), reported as JSON, Markdown and a PNG chart.

Modules: ``suite.py`` (YAML), ``tasks.py`` (interface, registry, context), ``builtin_tasks.py``,
``scoring.py`` (log-likelihoods), ``metrics.py`` (pure functions), ``runner.py``,
``report.py``. This package's ``__init__`` imports nothing heavy: the registry uses
:mod:`llmeco.evaluation.metrics` for metric directions.
"""
