"""Engine backends other than the native engine.

:mod:`~llmeco.engine.backends.remote` relays requests to other OpenAI-compatible servers
(vLLM, Ollama, llama.cpp's server, another llmeco, a hosted API) for the gateway: a pool of
URLs per model (:mod:`~llmeco.engine.backends.routing`), configured by
:mod:`~llmeco.engine.backends.upstream_config`.
"""
