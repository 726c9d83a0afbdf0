"""OpenAI-compatible /models endpoint."""
