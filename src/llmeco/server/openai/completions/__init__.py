"""OpenAI-compatible /completions endpoint."""
