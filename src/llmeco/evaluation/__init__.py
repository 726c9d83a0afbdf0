"""Evaluation: suites of tasks over JSONL data, run through the engine (generation) and the
model itself (log-likelihood scoring), reported as JSON, Markdown and a PNG chart.

Modules, each importing only those listed before it: ``metrics.py`` (pure functions),
``scoring.py`` (log-likelihoods), ``context.py`` (what a task runs in and returns),
``tasks.py`` (the task interface and the table of task types), ``builtin_tasks.py``,
``suite.py`` (YAML; registers the built-ins), ``report.py``, ``runner.py``. This package's
``__init__`` imports nothing heavy. The evaluation knows which way each metric improves and
hands that to the registry with every run it attaches (:func:`.report.metric_directions`).
"""
