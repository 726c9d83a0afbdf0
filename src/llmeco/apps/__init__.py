"""Applications built on the engine: task endpoints, the writing assistant, the support assistant.

Apps see the engine only through :class:`~llmeco.engine.protocol.EngineClient` and retrieval
only through :mod:`llmeco.rag`. Each app is split in two: a pure *spec* (the prompt, the
sampling parameters, and how to read the model's answer) and a runner, so the server can run a
spec with its own streaming, cancellation and accounting, and scripts can run it directly.
"""
