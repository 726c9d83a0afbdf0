"""Compatibility names for the engine's decoder, which now serves every supported family.

The Llama-only module grew into :mod:`llmeco.modeling.decoder` (one parametrised decoder)
with the per-family switches in :mod:`llmeco.modeling.families`; these aliases keep older
imports (``LlamaModel``, ``LlamaDims``, ``AttentionBatch``) working.
"""

from __future__ import annotations

from llmeco.modeling.attention import AttentionBatch, PrefillSpan
from llmeco.modeling.decoder import DecoderModel as LlamaModel
from llmeco.modeling.families import ModelDims as LlamaDims

__all__ = ["AttentionBatch", "LlamaDims", "LlamaModel", "PrefillSpan"]
