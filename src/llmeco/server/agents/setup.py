"""Agents at start-up: read the profiles, connect their MCP servers, check them against what
the server serves — so a profile that cannot work stops ``llmeco serve`` with a message naming
its file and field, instead of failing its first request."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmeco.apps.agents import AgentHub, AgentProfile, load_profiles
from llmeco.errors import ConfigError
from llmeco.rag.kb import list_knowledge_bases
from llmeco.server.state import ServerState
from llmeco.settings import Settings


def profile_paths(settings: Settings, agents: Sequence[str | Path]) -> list[Path]:
    """Where the profiles are: ``LLMECO_HOME/agents/`` when it exists, then each
    ``--agent`` path (a file, or a directory of ``*.yaml``)."""
    paths = [settings.agents_dir] if settings.agents_dir.is_dir() else []
    return [*paths, *(Path(p).expanduser() for p in agents)]


def read_profiles(settings: Settings, agents: Sequence[str | Path]) -> list[AgentProfile]:
    """Every profile the server will run (validated; names distinct).

    Raises:
        ConfigError: a missing path, bad YAML or an invalid field (naming file and field).
    """
    return load_profiles(profile_paths(settings, agents))


def check_agents(hub: AgentHub, state: ServerState) -> None:
    """Each agent's model is served, and its knowledge bases exist on this server.

    Raises:
        ConfigError: naming the profile file and the field.
    """
    served = [*state.engines, *state.aliases]
    kbs: set[str] | None = None
    for agent in hub.agents.values():
        profile = agent.profile
        where = profile.where()
        if profile.model is None and not state.engines:
            raise ConfigError(f"agent profile {where}: model: no generation model is served")
        if profile.model is not None and profile.model not in served:
            raise ConfigError(
                f"agent profile {where}: model: {profile.model!r} is not served "
                f"(served: {', '.join(served) or 'none'})"
            )
        wanted = agent.knowledge_bases()
        if not wanted:
            continue
        if state.support is None:
            raise ConfigError(
                f"agent profile {where}: tools: kb_search needs knowledge bases, which this "
                "server serves only with the embedding model (drop --no-embeddings)"
            )
        if kbs is None:
            kbs = {info.name for info in list_knowledge_bases(state.support.store)}
        for kb in wanted:
            if kb not in kbs:
                raise ConfigError(
                    f"agent profile {where}: tools: kb_search: there is no knowledge base "
                    f"named {kb!r} (create it with `llmeco kb create {kb}`; have: "
                    f"{', '.join(sorted(kbs)) or 'none'})"
                )
