"""deploy/helm/llmeco: ``helm lint --strict`` and ``helm template`` through Helm's own Go SDK
(the helm-python-sdk wheel, no helm binary needed), every rendered manifest validated
against the Kubernetes OpenAPI schemas in strict mode (kubernetes-validate, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import DEPLOY

CHART = DEPLOY / "helm" / "llmeco"
KUBE_VERSION = "1.30.0"

BASE: dict[str, Any] = {
    "secrets": {"secretKey": "0" * 64},
    "externalDatabase": {"url": "postgresql+psycopg://llmeco:pw@db:5432/llmeco"},
    "externalRedis": {"url": "redis://redis:6379/0"},
}


def render(values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Manifests by kind, as ``helm template`` renders them."""
    helm = pytest.importorskip("helm_python", reason="pip install helm-python-sdk==0.2.2")
    chart = helm.Chart.load(str(CHART))
    try:
        out = chart.render(values, name="team", namespace="llm", is_install=True)
    finally:
        chart.close()
    kinds: dict[str, list[dict[str, Any]]] = {}
    for path, text in out.items():
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def validate(kinds: dict[str, list[dict[str, Any]]]) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    for kind, docs in kinds.items():
        if kind == "ServiceMonitor":  # a CRD: not in the Kubernetes schemas
            continue
        for doc in docs:
            kv.validate(doc, KUBE_VERSION, strict=True)


def test_helm_lint_strict() -> None:
    helm = pytest.importorskip("helm_python", reason="pip install helm-python-sdk==0.2.2")
    for values in (BASE, {**BASE, "autoscaling": {"enabled": True, "metric": "queue"}}):
        report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
        errors = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not errors, errors


def test_default_render_is_valid_and_complete() -> None:
    kinds = render(BASE)
    validate(kinds)
    assert set(kinds) == {
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    }
    (deploy,) = kinds["Deployment"]
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"]["cpu"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert deploy["spec"]["replicas"] == 2
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claim = next(v for v in pod["volumes"] if v["name"] == mounts["/data"])
    assert (
        claim["persistentVolumeClaim"]["claimName"]
        == kinds["PersistentVolumeClaim"][0]["metadata"]["name"]
    )
    (secret,) = kinds["Secret"]
    assert set(secret["stringData"]) == {
        "LLMECO_SECRET_KEY",
        "LLMECO_DATABASE_URL",
        "LLMECO_REDIS_URL",
    }
    (config,) = kinds["ConfigMap"]
    assert config["data"]["LLMECO_HOME"] == "/data"
    assert not any("SECRET" in k or "DATABASE_URL" in k for k in config["data"])


def test_gpu_hpa_servicemonitor_and_tracing_options() -> None:
    kinds = render(
        {
            **BASE,
            "gpu": {"enabled": True, "count": 2},
            "autoscaling": {"enabled": True, "metric": "queue", "targetQueueDepth": "3"},
            "serviceMonitor": {"enabled": True},
            "tracing": {"otlpEndpoint": "http://otel:4318"},
        }
    )
    validate(kinds)
    (container,) = kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "replicas" not in kinds["Deployment"][0]["spec"]  # the HPA owns it
    (hpa,) = kinds["HorizontalPodAutoscaler"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "llmeco_num_requests_waiting"
    (monitor,) = kinds["ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert kinds["ConfigMap"][0]["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel:4318"
    cpu = render({**BASE, "autoscaling": {"enabled": True, "metric": "cpu"}})
    assert cpu["HorizontalPodAutoscaler"][0]["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_existing_secret_and_claim() -> None:
    kinds = render(
        {
            "replicaCount": 1,
            "secrets": {"existingSecret": "llmeco-keys"},
            "persistence": {"existingClaim": "home"},
        }
    )
    validate(kinds)
    assert "Secret" not in kinds and "PersistentVolumeClaim" not in kinds
    pod = kinds["Deployment"][0]["spec"]["template"]["spec"]
    refs = [e.get("secretRef", {}).get("name") for e in pod["containers"][0]["envFrom"]]
    assert "llmeco-keys" in refs


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "secrets.secretKey is required"),
        ({"secrets": {"secretKey": "x"}}, "externalDatabase.url"),
        ({**BASE, "autoscaling": {"enabled": True, "metric": "memory"}}, "cpu or queue"),
    ],
)
def test_refuses_unsafe_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match=message):
        render(values)


def test_strict_validation_catches_a_bad_manifest(tmp_path: Path) -> None:
    """The schema check can fail: a misspelt field in a Deployment is refused."""
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    (deploy,) = render(BASE)["Deployment"]
    deploy["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(deploy, KUBE_VERSION, strict=True)
