"""A template llmeco plugin (see README.md)."""
