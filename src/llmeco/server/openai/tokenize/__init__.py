"""OpenAI-compatible /tokenize endpoint."""
