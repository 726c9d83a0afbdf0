"""Agent profiles: the YAML format, its shorthands, and start-up errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmeco.apps.agents import AgentProfile, load_profile, load_profiles
from llmeco.apps.agents.profile import (
    CalculatorOptions,
    ClassifyOptions,
    KbSearchOptions,
    expand_env,
)
from llmeco.apps.agents.tools import KbSearchTool, TaskTool, builtin_tool
from llmeco.errors import ConfigError

GOOD = """\
name: helper
model: default
system: You answer questions about the handbook.
tools:
  - kb_search: {kb: handbook, k: 3, timeout: 5}
  - calculator
  - classify: {labels: [billing, shipping, other]}
  - translate: {target_language: French, name: to_french}
mcp:
  - name: orders
    command: [python, orders.py]
    tools: [lookup_order]
  - name: wiki
    url: https://wiki.example/mcp
    headers: {Authorization: "Bearer ${WIKI_TOKEN}"}
max_steps: 4
tool_timeout: 20
temperature: 0.2
max_tokens: 256
tool_choice: required
"""


def write(tmp_path: Path, text: str, name: str = "helper.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_full_profile(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    profile = load_profile(path)
    assert profile.source == path and profile.model_name == "agent:helper"
    kb, calc, classify, translate = profile.tools
    assert isinstance(kb, KbSearchOptions) and (kb.kb, kb.k, kb.timeout) == ("handbook", 3, 5)
    assert isinstance(calc, CalculatorOptions)
    assert isinstance(classify, ClassifyOptions) and classify.labels[0] == "billing"
    assert translate.name == "to_french"
    orders, wiki = profile.mcp
    assert orders.command == ["python", "orders.py"] and orders.tools == ["lookup_order"]
    assert wiki.url == "https://wiki.example/mcp" and wiki.command is None
    assert (profile.max_steps, profile.tool_timeout, profile.tool_choice) == (4, 20, "required")
    tools = [builtin_tool(o) for o in profile.tools]
    assert [t.name for t in tools] == ["kb_search", "calculator", "classify", "to_french"]
    assert isinstance(tools[0], KbSearchTool) and tools[0].timeout == 5
    assert tools[0].parameters["required"] == ["query"]
    assert isinstance(tools[2], TaskTool) and "billing, shipping, other" in tools[2].description
    assert isinstance(tools[3], TaskTool) and set(tools[3].parameters["properties"]) == {"text"}
    assert tools[3].description == "Translate a text into French."


def test_the_example_profile_loads() -> None:
    example = Path(__file__).resolve().parents[4] / "examples" / "agents" / "handbook.yaml"
    profile = load_profile(example)
    assert profile.name == "handbook" and profile.tool_choice == "required"
    assert [builtin_tool(o).name for o in profile.tools] == ["kb_search", "calculator", "summarize"]


def test_defaults_and_the_mapping_form() -> None:
    profile = AgentProfile.model_validate(
        {"name": "a", "tools": {"calculator": None, "kb_search": {"kb": "x"}}}
    )
    assert [t.kind for t in profile.tools] == ["calculator", "kb_search"]
    assert profile.model is None and profile.max_steps == 5 and profile.tool_choice == "auto"
    assert profile.temperature == 0.0 and not profile.parallel_tool_calls


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        (
            "name: a\ntools: [{kb_search: {kb: x, k: 50}}]",
            "tools: entry 0 (kb_search): k: Input should be less",
        ),
        ("name: a\ntools: [browser]", "tools: entry 0: unknown tool kind 'browser'; known kinds"),
        ("name: a\ntools: [{kb_search: {}}]", "tools: entry 0 (kb_search): kb: Field required"),
        ("name: a\ntools: [{classify: {labels: [a, a]}}]", "labels must be distinct"),
        ("name: a\ntools: [calculator, calculator]", "two tools are named calculator"),
        ("name: a\nmax_steps: 0", "max_steps: Input should be greater than or equal to 1"),
        ("name: a\ntool_choice: none", "tool_choice: Input should be 'auto' or 'required'"),
        ("name: a\ntemperature: hot", "temperature: Input should be a valid number"),
        ("name: a b", "name: String should match pattern"),
        ("name: a\nsystm: hi", "systm: Extra inputs are not permitted"),
        ("model: x", "name: Field required"),
        ("name: a\nmcp: [{name: o}]", "mcp.0: Value error, give exactly one of command"),
        (
            "name: a\nmcp: [{name: o, command: [x], url: 'http://h/mcp'}]",
            "give exactly one of command",
        ),
        ("name: a\nmcp: [{name: o, command: [x], headers: {a: b}}]", "headers are for url"),
        ("name: a\nmcp: [{name: o, url: 'ftp://h'}]", "mcp.0.url: String should match"),
        ("- a list", "must be a mapping"),
        ("name: [unclosed", "not valid YAML"),
    ],
)
def test_a_bad_profile_names_the_file_and_the_field(
    tmp_path: Path, yaml_text: str, problem: str
) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert info.value.message.startswith(f"agent profile {path}: ")
    assert problem in info.value.message


def test_profiles_from_files_and_directories(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    folder.mkdir()
    write(folder, "name: b\n", "b.yaml")
    write(folder, "name: a\n", "a.yml")
    write(folder, "not a profile", "notes.txt")
    single = write(tmp_path, "name: c\n", "c.yaml")
    assert [p.name for p in load_profiles([folder, single])] == ["a", "b", "c"]
    twin = write(tmp_path, "name: a\n", "twin.yaml")
    with pytest.raises(ConfigError, match=r"twin.yaml: name 'a' is already used by .*a.yml"):
        load_profiles([folder, twin])
    with pytest.raises(ConfigError, match="does not exist"):
        load_profiles([tmp_path / "missing.yaml"])


def test_environment_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIKI_TOKEN", "s3cret")
    assert expand_env("Bearer ${WIKI_TOKEN}", "here") == "Bearer s3cret"
    monkeypatch.delenv("WIKI_TOKEN")
    with pytest.raises(ConfigError, match="here: environment variable WIKI_TOKEN is not set"):
        expand_env("Bearer ${WIKI_TOKEN}", "here")
