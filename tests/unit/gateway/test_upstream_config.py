"""Validation of the gateway's YAML and ``--upstream`` options: clear messages naming fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmeco.engine.backends.upstream_config import (
    config_from_options,
    load_config,
    normalize_url,
    parse_config,
    parse_upstream_option,
)
from llmeco.errors import ConfigError

YAML = """
upstreams:
  - name: small
    urls: [http://127.0.0.1:8001/v1, "http://127.0.0.1:8002/"]
    model: default
    api_key_env: UPSTREAM_KEY
    timeout: 60
    owned_by: vllm-cluster
    fallbacks: [other]
  - name: other
    urls: [https://api.example.com/v1]
"""


def test_yaml_loads_with_defaults_and_normalized_urls(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(YAML)
    config = load_config(path)
    small, other = config.upstreams
    assert small.urls == ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
    assert small.upstream_model == "default" and small.owner == "vllm-cluster"
    assert other.upstream_model == "other" and other.owner == "other"
    assert other.timeout == 60 and other.fallbacks == [] and other.retries == 2


def test_urls_get_v1_when_the_path_is_empty() -> None:
    assert normalize_url("http://h:1") == "http://h:1/v1"
    assert normalize_url("http://h:1/openai/v1/") == "http://h:1/openai/v1"
    with pytest.raises(ValueError, match="not an http"):
        normalize_url("ftp://h/v1")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"upstreams": [{"name": "a", "urls": []}]},
            r"upstreams\[0\]\.urls: List should have at least 1",
        ),
        (
            {"upstreams": [{"name": "a", "urls": ["h:1"]}]},
            r"upstreams\[0\]\.urls: 'h:1' is not an http",
        ),
        (
            {"upstreams": [{"name": "a", "urls": ["http://h"], "timeout": 0}]},
            r"upstreams\[0\]\.timeout: .*greater than 0",
        ),
        (
            {"upstreams": [{"name": "a", "urls": ["http://h"], "tmeout": 5}]},
            r"upstreams\[0\]\.tmeout: Extra inputs",
        ),
        ({"upstreams": [{"urls": ["http://h"]}]}, r"upstreams\[0\]\.name: Field required"),
        (
            {"upstreams": [{"name": "a b", "urls": ["http://h"]}]},
            r"name: must not contain whitespace",
        ),
        (
            {"upstreams": [{"name": "a", "urls": ["http://h"], "fallbacks": ["zzz"]}]},
            "fallbacks name unknown upstreams: zzz",
        ),
        (
            {"upstreams": [{"name": "a", "urls": ["http://h"], "fallbacks": ["a"]}]},
            "cannot be its own fallback",
        ),
        (
            {
                "upstreams": [
                    {"name": "a", "urls": ["http://h"]},
                    {"name": "a", "urls": ["http://g"]},
                ]
            },
            "repeated: a",
        ),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_configs_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_cli_option_and_file_merge(tmp_path: Path) -> None:
    spec = parse_upstream_option("fast=http://a:1,http://b:2/v1", "KEY_VAR")
    assert spec.name == "fast" and spec.urls == ["http://a:1/v1", "http://b:2/v1"]
    assert spec.api_key_env == "KEY_VAR"
    with pytest.raises(ConfigError, match="NAME=URL"):
        parse_upstream_option("http://a:1")
    path = tmp_path / "m.yaml"
    path.write_text(YAML)
    merged = config_from_options(["fast=http://a:1"], None, path)
    assert [u.name for u in merged.upstreams] == ["small", "other", "fast"]
    with pytest.raises(ConfigError, match="repeated: small"):
        config_from_options(["small=http://a:1"], None, path)


def test_missing_key_variable_and_bad_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    spec = parse_upstream_option("a=http://h", "NOPE_KEY")
    with pytest.raises(ConfigError, match="NOPE_KEY"):
        spec.api_key()
    monkeypatch.setenv("NOPE_KEY", "secret")
    assert spec.api_key() == "secret"
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstreams: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
