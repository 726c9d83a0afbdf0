"""The agents one server runs: each profile with its tools, MCP sessions included.

:meth:`AgentHub.open` builds every profile's built-in tools and connects to its MCP servers
(listing their tools once); :meth:`AgentHub.aclose` ends those sessions, last opened first.
A profile whose tools clash by name, or whose MCP server cannot be reached, fails the whole
start-up with a :class:`~llmeco.errors.ConfigError` naming the profile file, after closing
whatever was already opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmeco.apps.agents.mcp_client import McpConnection, open_mcp_tools
from llmeco.apps.agents.profile import AGENT_PREFIX, AgentProfile, KbSearchOptions
from llmeco.apps.agents.tools import Tool
from llmeco.errors import ConfigError, NotFound
from llmeco.plugins import get_registry


@dataclass(frozen=True)
class Agent:
    """A profile and the tools it offers its model."""

    profile: AgentProfile
    tools: tuple[Tool, ...]

    @property
    def name(self) -> str:
        """The profile's name."""
        return self.profile.name

    @property
    def model_name(self) -> str:
        """What clients send as ``model``: ``agent:<name>``."""
        return AGENT_PREFIX + self.profile.name

    def knowledge_bases(self) -> list[str]:
        """The knowledge bases its ``kb_search`` tools read."""
        return [o.kb for o in self.profile.tools if isinstance(o, KbSearchOptions)]


class AgentHub:
    """Agents by name, and the MCP sessions their tools use."""

    def __init__(self, agents: Sequence[Agent], connections: Sequence[McpConnection] = ()) -> None:
        self.agents = {agent.name: agent for agent in agents}
        self._connections = list(connections)

    @classmethod
    async def open(cls, profiles: Sequence[AgentProfile]) -> AgentHub:
        """Build each profile's tools and connect to its MCP servers.

        Raises:
            ConfigError: an MCP server cannot be reached or lacks a named tool, two tools of
                one profile share a name, or two profiles share a name.
        """
        agents: list[Agent] = []
        connections: list[McpConnection] = []
        try:
            for profile in profiles:
                if any(a.name == profile.name for a in agents):
                    raise ConfigError(
                        f"{profile.where()}: another agent profile is named {profile.name!r}"
                    )
                kinds = get_registry().tools()
                tools = [kinds[options.kind].build(options) for options in profile.tools]
                for spec in profile.mcp:
                    connection, offered = await open_mcp_tools(profile, spec)
                    connections.append(connection)
                    tools += offered
                names = [tool.name for tool in tools]
                twice = sorted({n for n in names if names.count(n) > 1})
                if twice:
                    raise ConfigError(
                        f"{profile.where()}: more than one tool is named {', '.join(twice)}; "
                        "rename a built-in with `name`, or list an MCP server's `tools`"
                    )
                agents.append(Agent(profile, tuple(tools)))
        except BaseException:
            for connection in reversed(connections):
                await connection.aclose()
            raise
        return cls(agents, connections)

    def get(self, name: str) -> Agent:
        """The agent named ``name``.

        Raises:
            NotFound: no agent has that name (``param="model"``; the message lists them).
        """
        agent = self.agents.get(name)
        if agent is None:
            known = ", ".join(AGENT_PREFIX + n for n in self.agents) or "none"
            raise NotFound(
                f"The model `{AGENT_PREFIX}{name}` does not exist: there is no agent named "
                f"{name!r}. Agents: {known}.",
                param="model",
            )
        return agent

    async def aclose(self) -> None:
        """End every MCP session, last opened first (idempotent)."""
        connections, self._connections = self._connections, []
        for connection in reversed(connections):
            await connection.aclose()
