"""OpenAI-compatible endpoints: one package per endpoint (router, protocol, serving)."""
