"""Scale-out plans: what ``llmeco serve --ray`` and the Serve config accept or refuse, with
no Ray cluster (the cluster itself is tested in tests/integration/server/test_ray_serve.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmeco.errors import ConfigError
from llmeco.server.scaleout import ReplicaOptions, Scaling, check_shared_state
from llmeco.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_fixed_replicas_become_num_replicas() -> None:
    options = Scaling(replicas=3, cpus_per_replica=0.5).deployment_options()
    assert options["num_replicas"] == 3
    assert options["ray_actor_options"] == {"num_cpus": 0.5}
    assert "autoscaling_config" not in options


def test_autoscaling_passes_through() -> None:
    options = Scaling(
        min_replicas=1, max_replicas=4, target_ongoing_requests=2
    ).deployment_options()
    assert options["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 2,
    }
    assert "num_replicas" not in options


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"replicas": 0}, "--replicas must be at least 1"),
        ({"min_replicas": 3, "max_replicas": 2}, "--min-replicas (3) <= --max-replicas (2)"),
        ({"target_ongoing_requests": 0}, "--target-ongoing-requests"),
    ],
)
def test_bad_plans_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Scaling(**kwargs)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_replicas_without_redis_would_multiply_every_limit(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with pytest.raises(ConfigError, match="LLMECO_REDIS_URL"):
        check_shared_state(settings, Scaling(replicas=2), auth=True)
    with pytest.raises(ConfigError, match="LLMECO_REDIS_URL"):
        check_shared_state(settings, Scaling(max_replicas=3), auth=True)
    check_shared_state(settings, Scaling(replicas=2), auth=False)  # no keys, no limits
    check_shared_state(settings, Scaling(replicas=1), auth=True)


def test_a_remote_cluster_cannot_share_sqlite(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, redis_url="redis://127.0.0.1:6379/0")
    with pytest.raises(ConfigError, match="LLMECO_DATABASE_URL"):
        check_shared_state(settings, Scaling(address="ray://head:10001"), auth=True)


def test_overrides_reach_the_replica_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMECO_LOG_LEVEL", "DEBUG")
    settings = ReplicaOptions(overrides={"tool_parser": "mistral"}).settings()
    assert settings.tool_parser == "mistral"
    assert settings.log_level == "DEBUG"  # the rest comes from the replica's environment


def test_shipped_serve_config_is_valid_and_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray.serve")
    from ray.serve.schema import ServeDeploySchema

    from llmeco.server.scaleout import app_builder

    config = yaml.safe_load((ROOT / "deploy" / "ray" / "serve-config.yaml").read_text())
    schema = ServeDeploySchema.model_validate(config)
    (app,) = schema.applications
    assert app.import_path == "llmeco.server.scaleout:app_builder"
    for name, value in app.runtime_env["env_vars"].items():
        monkeypatch.setenv(name, value)
    built = app_builder(app.args)
    assert type(built).__name__ == "Application"
    with pytest.raises(ConfigError, match="unknown llmeco Serve args: replica"):
        app_builder({"replica": 2})
