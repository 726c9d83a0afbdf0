"""The model registry: versions, aliases with history, lineage, eval runs, verified artifacts.

``registry.py`` (versions, aliases, evals), ``artifacts.py`` (content-addressed blobs),
``lifecycle.py`` (promote with gates, rollback), ``checkout.py`` (verified loading),
``compare.py`` (diff), ``refs.py`` (``NAME@alias`` / ``NAME:version``), ``records.py`` (the
dataclasses handed out, metric directions), ``scan.py`` (what a directory registers),
``model_files.py`` (which weight files are read and which refused; also used by
:mod:`llmeco.modeling.load`), ``tables.py``.
"""

from llmeco.registry.refs import ModelRef, parse_ref
from llmeco.registry.registry import AliasEvent, EvalRecord, RegisteredModel, Registry, Version

__all__ = [
    "AliasEvent",
    "EvalRecord",
    "ModelRef",
    "RegisteredModel",
    "Registry",
    "Version",
    "parse_ref",
]
