"""OpenAI-compatible /chat endpoint."""
