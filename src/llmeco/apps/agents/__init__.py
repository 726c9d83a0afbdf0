"""Agents: a served model that calls tools in a loop until it can answer.

An agent is a YAML profile (:mod:`~llmeco.apps.agents.profile`): a model, a system prompt,
tools and limits. Its tools (:mod:`~llmeco.apps.agents.tools`) are built-ins — knowledge-base
search, a calculator, the text tasks — and the tools of MCP servers
(:mod:`~llmeco.apps.agents.mcp_client`, through the official SDK). The loop
(:mod:`~llmeco.apps.agents.loop`, its events in :mod:`~llmeco.apps.agents.events`) runs model
turns under the tool-call grammar, executes the calls (timeouts and failures become error
results for the model), and stops at an answer or at the profile's step limit.
:mod:`~llmeco.apps.agents.hub` holds a server's agents and their MCP sessions.

No HTTP here: the server (``server/agents/``) serves an agent as model ``agent:<name>``,
supplies the model turns and services checked against the caller's API key, and audits each
tool execution.
"""

from llmeco.apps.agents.events import (
    AgentEvent,
    AgentResult,
    AgentStep,
    AnswerDelta,
    StepModel,
    ToolExecution,
    ToolObserver,
)
from llmeco.apps.agents.hub import Agent, AgentHub
from llmeco.apps.agents.loop import MAX_STEPS, AgentLoop, EngineModel
from llmeco.apps.agents.profile import AGENT_PREFIX, AgentProfile, load_profile, load_profiles
from llmeco.apps.agents.tools import AgentServices, Tool, ToolContext, ToolError

__all__ = [
    "AGENT_PREFIX",
    "MAX_STEPS",
    "Agent",
    "AgentEvent",
    "AgentHub",
    "AgentLoop",
    "AgentProfile",
    "AgentResult",
    "AgentServices",
    "AgentStep",
    "AnswerDelta",
    "EngineModel",
    "StepModel",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolExecution",
    "ToolObserver",
    "load_profile",
    "load_profiles",
]
