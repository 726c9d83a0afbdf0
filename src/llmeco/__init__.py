"""llmeco: from raw text to a governed language-model service."""

__version__ = "0.1.0"

__all__ = ["__version__"]
