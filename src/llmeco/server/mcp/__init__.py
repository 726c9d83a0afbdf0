"""llmeco as an MCP (Model Context Protocol) server: a team's knowledge bases, models and text
tasks as tools other agents can call.

Tools: ``list_knowledge_bases``, ``search_knowledge_base``, ``chat``, and one per task
endpoint (``classify``, ``sentiment``, ``summarize``, ``translate``, ``correct``,
``moderate``, ``extract``). They run the same serving code as the HTTP routes (the task
endpoints' :class:`~llmeco.server.tasks.serving.TaskServing`, the apps' generation path), so
the same model checks, limits, token accounting and metrics apply.

* :mod:`~llmeco.server.mcp.schemas` — the tools' arguments (pydantic) and input schemas;
* :mod:`~llmeco.server.mcp.caller` — who is calling: key, request guard, request context;
* :mod:`~llmeco.server.mcp.tools` — tool definitions and implementations over ``ServerState``;
* :mod:`~llmeco.server.mcp.server` — the SDK server: tool errors as ``isError`` results, one
  audit-ledger entry per call;
* :mod:`~llmeco.server.mcp.http` — ``/mcp`` (streamable HTTP) in the app, behind API keys;
* :mod:`~llmeco.server.mcp.stdio` — the same tools over stdin/stdout (``llmeco mcp serve``).
"""
