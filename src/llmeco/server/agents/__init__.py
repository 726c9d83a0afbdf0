"""Agents served as models: ``model: "agent:<name>"`` on ``/v1/chat/completions``.

* :mod:`~llmeco.server.agents.setup` — profiles read, MCP servers connected and every profile
  checked against the served models and knowledge bases at start-up;
* :mod:`~llmeco.server.agents.serving` — the ``agent:`` chat backend: JSON with
  ``agent_steps``, or SSE with ``agent_step`` on chunks;
* :mod:`~llmeco.server.agents.runner` — model turns and services under the caller's key;
* :mod:`~llmeco.server.agents.audit` — one audit-ledger entry per tool execution.

Governance. The route needs the ``chat`` scope. A key with a model allow-list must list
``agent:<name>`` to see or use the agent, and each thing the agent does is checked on its
own, every time: the agent's model (on every turn: allow-list, TPM and daily token budget,
as for a direct chat request), each task tool's generation (same), each knowledge-base search
(``support:<kb>`` on the allow-list, as on ``/mcp``). A refusal is an error result the model
reads (``{"error": "API key … may not use model `support:hr`…"}``), never data it should not
see. MCP tools are the profile owner's choice and are authorised with the agent itself. Every
execution is an audit-ledger entry (:mod:`~llmeco.server.agents.audit`).
"""

from llmeco.server.agents.serving import AgentChat
from llmeco.server.agents.setup import check_agents, profile_paths, read_profiles

__all__ = ["AgentChat", "check_agents", "profile_paths", "read_profiles"]
