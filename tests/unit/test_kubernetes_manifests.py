"""The Kubernetes manifests in deploy/kubernetes, checked offline: every resource against the
Kubernetes API schemas (kubernetes-validate), and against the service itself: the commands
exist, the probes ask paths it serves on the port it listens on, every variable is a setting it
reads, every secret key it is given exists, and the image runs as the user the pods require."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.main import get_command

from service.entrypoints.cli import cli
from tests.deployment import settings_variables

DEPLOY = Path(__file__).parents[2] / "deploy" / "kubernetes"
BASE = DEPLOY / "base"
KUBERNETES_VERSION = "1.30.0"
SERVED_PATHS = {"/health", "/health/live", "/health/ready", "/metrics"}
"""What the service's (and the relay's) health server answers (service/entrypoints/app.py)."""

Resource = dict[str, Any]


def kustomization(folder: Path) -> Resource:
    loaded: Resource = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return loaded


def resources() -> list[Resource]:
    found = []
    for name in kustomization(BASE)["resources"]:
        found += [doc for doc in yaml.safe_load_all((BASE / name).read_text()) if doc]
    return found


def of_kind(kind: str) -> list[Resource]:
    return [r for r in resources() if r["kind"] == kind]


def pod_specs() -> list[tuple[str, Resource]]:
    return [
        (r["metadata"]["name"], r["spec"]["template"]["spec"])
        for r in resources()
        if r["kind"] in ("Deployment", "Job")
    ]


def containers() -> list[tuple[str, Resource]]:
    return [(name, c) for name, spec in pod_specs() for c in spec["containers"]]


def the_configmap() -> Resource:
    [configmap] = of_kind("ConfigMap")
    return configmap


def the_secret() -> Resource:
    [secret] = of_kind("Secret")
    return secret


def test_every_file_the_base_lists_exists_and_nothing_is_left_out() -> None:
    listed = set(kustomization(BASE)["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize(
    "resource",
    [r for r in resources() if r["kind"] != "ServiceMonitor"],
    ids=lambda r: f"{r['kind']}/{r['metadata']['name']}",
)
def test_each_resource_is_valid_for_the_kubernetes_api(resource: Resource) -> None:
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_service_monitor_scrapes_the_services_metrics_port() -> None:
    # A Prometheus Operator resource: kubernetes-validate knows no custom resources, so its
    # fields are checked against what they must name.
    [monitor] = of_kind("ServiceMonitor")
    [service] = of_kind("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


def test_the_commands_run_are_the_services_own() -> None:
    commands = set(get_command(cli).commands)  # type: ignore[attr-defined]
    for name, container in containers():
        program, command, *options = container["args"]
        assert program == "order-service", name
        assert command in commands, f"{name}: no command {command!r}"
        assert all(option.startswith("--") for option in options), name
    assert {c["args"][1] for _, c in containers()} == {"serve", "relay", "migrate"}


def test_probes_ask_paths_the_service_serves_on_the_port_it_listens_on() -> None:
    port = int(the_configmap()["data"]["HEALTH_PORT"])
    probed = 0
    for name, container in containers():
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        assert set(ports.values()) <= {port}, name
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(kind)
            if probe is None:
                continue
            probed += 1
            assert probe["httpGet"]["path"] in SERVED_PATHS, f"{name} {kind}"
            target = probe["httpGet"]["port"]
            assert ports.get(target, target) == port, f"{name} {kind}"
        if "readinessProbe" in container:
            # Liveness must never follow a dependency (an outage would restart pods in a loop).
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
            assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert probed == 6  # the service's and the relay's three each; the Job has none


def test_every_variable_given_is_a_setting_the_service_reads() -> None:
    given = set(the_configmap()["data"])
    for _, container in containers():
        given |= {env["name"] for env in container.get("env", [])}
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] == the_configmap()["metadata"]["name"]
    unknown = given - settings_variables()
    assert not unknown, f"not settings of the service: {sorted(unknown)}"
    # And the settings a cluster must give: where Postgres and Kafka are, the keys, the mode.
    assert {
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "MASTER_KEY_FILE",
        "AUTH_KEYS_FILE",
        "AUTH_MODE",
        "MIGRATE_ON_START",
        "RELAY_IN_PROCESS",
    } <= given


def test_every_secret_key_used_exists_and_files_are_where_the_settings_point() -> None:
    secret = the_secret()
    keys = set(secret["stringData"])
    data = the_configmap()["data"]
    for name, spec in pod_specs():
        mounted: dict[str, str] = {}
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            for env in container.get("env", []):
                reference = env["valueFrom"]["secretKeyRef"]
                assert reference["name"] == secret["metadata"]["name"], name
                assert reference["key"] in keys, f"{name}: no key {reference['key']!r}"
            for mount in container["volumeMounts"]:
                volume = volumes[mount["name"]]
                if "secret" not in volume:
                    continue
                assert volume["secret"]["secretName"] == secret["metadata"]["name"], name
                for item in volume["secret"]["items"]:
                    assert item["key"] in keys, f"{name}: no key {item['key']!r}"
                    mounted[f"{mount['mountPath']}/{item['path']}"] = item["key"]
        for setting in ("MASTER_KEY_FILE", "AUTH_KEYS_FILE", "KAFKA_SASL_PASSWORD_FILE"):
            assert data[setting] in mounted, f"{name}: {setting} names no mounted secret file"


def test_pods_run_as_the_images_numeric_non_root_user_on_a_read_only_filesystem() -> None:
    dockerfile = (DEPLOY.parents[1] / "Dockerfile").read_text()
    [user] = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user.isdigit(), "runAsNonRoot needs a numeric user in the image"
    assert int(user) > 0
    for name, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == int(user), name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert "limits" in container["resources"], name
            assert {"/tmp"} <= {m["mountPath"] for m in container["volumeMounts"]}, name


def test_the_production_overlay_names_what_the_base_has() -> None:
    overlay = kustomization(DEPLOY / "production")
    assert overlay["resources"] == ["../base"]
    deployments = {r["metadata"]["name"] for r in of_kind("Deployment")}
    assert {r["name"] for r in overlay["replicas"]} <= deployments
    images = {c["image"].partition(":")[0] for _, c in containers()}
    assert {i["name"] for i in overlay["images"]} == images


def test_the_grace_period_outlasts_a_rebalances_wait_for_the_batch_in_flight() -> None:
    from service.entrypoints.app import REVOKE_WAIT_SECONDS

    [service] = [r for r in of_kind("Deployment") if r["metadata"]["name"] == "order-service"]
    grace = service["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= REVOKE_WAIT_SECONDS + 30
