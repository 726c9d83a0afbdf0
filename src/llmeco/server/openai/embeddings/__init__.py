"""OpenAI-compatible /embeddings endpoint."""
