"""compose.yaml and the files under deploy/compose, checked offline (there may be no Docker where
the tests run): migrations run once before the service, every variable is a setting the service
reads, Prometheus scrapes the port the service serves /metrics on, and Grafana shows the
dashboard the package ships, on the data source it provisions, with no clicks."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml
from typer.main import get_command

from service.entrypoints.cli import cli
from service.settings import Settings
from tests.deployment import REPO, image_environment, settings_variables

COMPOSE = REPO / "compose.yaml"
SHIPPED_DASHBOARD = REPO / "service" / "entrypoints" / "dashboards" / "order-service.json"
GRAFANA_PROVISIONING = PurePosixPath("/etc/grafana/provisioning")
# Where the official image's default command reads its configuration.
PROMETHEUS_CONFIG = PurePosixPath("/etc/prometheus/prometheus.yml")
PROMETHEUS_PORT = 9090
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

Document = dict[str, Any]


def services() -> dict[str, Document]:
    loaded: Document = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Document] = loaded["services"]
    return found


def service(name: str) -> Document:
    return services()[name]


def environment(name: str) -> dict[str, str]:
    given = service(name).get("environment", {})
    if isinstance(given, list):  # compose also takes `- NAME=value`
        pairs = [str(item).partition("=") for item in given]
        return {key: value for key, _, value in pairs}
    return {key: str(value) for key, value in given.items()}


def mounts(name: str) -> dict[PurePosixPath, Path]:
    """Where each bind mount of a service appears in its container, and what it shows there."""
    found: dict[PurePosixPath, Path] = {}
    for volume in service(name).get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume["source"], volume["target"]
        else:
            source, target, *_ = volume.split(":")
        # Compose resolves relative sources against the compose file's folder.
        found[PurePosixPath(target)] = (COMPOSE.parent / source).resolve()
    return found


def on_host(name: str, path: str) -> Path:
    """What a path inside the service's container is on this machine, through its mounts."""
    inside = PurePosixPath(path)
    for target, source in mounts(name).items():
        if inside == target or target in inside.parents:
            return source.joinpath(*inside.relative_to(target).parts)
    raise AssertionError(f"{name}: nothing is mounted at {path}")


def grafana_provisioning(kind: str) -> list[Document]:
    folder = on_host("grafana", str(GRAFANA_PROVISIONING / kind))
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    assert files, f"no {kind} provisioning in {folder}"
    return [yaml.safe_load(file.read_text()) for file in files]


def prometheus_config() -> Document:
    # The image's own command names the config file; an override could name another.
    assert "command" not in service("prometheus")
    loaded: Document = yaml.safe_load(on_host("prometheus", str(PROMETHEUS_CONFIG)).read_text())
    return loaded


def shipped_dashboard() -> Document:
    loaded: Document = json.loads(SHIPPED_DASHBOARD.read_text())
    return loaded


def container_ports(name: str) -> set[int]:
    """The container side of a service's published ports (`host:container` or `container`)."""
    return {int(str(port).rpartition(":")[2]) for port in service(name).get("ports", [])}


def data_source_references(node: object) -> list[Document]:
    """Every `datasource` a dashboard's panels, queries and variables name, at any depth."""
    found: list[Document] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                found.append(value)
            else:
                found += data_source_references(value)
    elif isinstance(node, list):
        for item in node:
            found += data_source_references(item)
    return found


def test_migrate_runs_the_migrate_command_and_the_service_waits_for_it() -> None:
    migrate, runs = service("migrate"), service("service")
    # Without an ENTRYPOINT in the image, `command` is the whole command line.
    assert not re.search(r"^ENTRYPOINT\b", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    program, command = migrate["command"]
    assert program == "order-service"
    assert command == "migrate"
    assert command in get_command(cli).commands  # type: ignore[attr-defined]
    # One shot: a restart policy would run it again after it exits 0.
    assert migrate.get("restart", "no") == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert runs["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    # The same build and the same database, or it would migrate something else.
    assert migrate["build"] == runs["build"]
    assert migrate["image"] == runs["image"]
    assert environment("migrate")["DATABASE_URL"] == environment("service")["DATABASE_URL"]


def test_the_service_leaves_migrations_to_migrate() -> None:
    assert environment("service")["MIGRATE_ON_START"] == "false"


def test_every_variable_given_is_a_setting_the_service_reads() -> None:
    for name in ("service", "migrate"):
        unknown = set(environment(name)) - settings_variables()
        assert not unknown, f"{name}: not settings of the service: {sorted(unknown)}"


def test_prometheus_scrapes_the_port_the_service_serves_metrics_on() -> None:
    # What the container runs with: the image's variables, then the compose file's.
    given = image_environment() | environment("service")
    port = int(given.get("HEALTH_PORT", Settings.model_fields["health_port"].default))
    host = given.get("HEALTH_HOST", Settings.model_fields["health_host"].default)
    assert host not in LOOPBACK, "Prometheus, in another container, could not reach /metrics"
    assert given.get("METRICS_ENABLED", "true").lower() != "false"
    assert container_ports("service") == {port}

    scraped = [
        (job.get("metrics_path", "/metrics"), target)
        for job in prometheus_config()["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert ("/metrics", f"service:{port}") in scraped
    for _, target in scraped:
        assert target.rpartition(":")[0] in services(), f"{target} is no service of compose.yaml"


def test_grafana_loads_the_shipped_dashboard_from_where_the_package_keeps_it() -> None:
    [provisioned] = grafana_provisioning("dashboards")
    [provider] = provisioned["providers"]
    assert provider["type"] == "file"
    folder = on_host("grafana", provider["options"]["path"])
    # Mounted from the package's folder, not copied, so the dashboard shown is the one shipped.
    assert (folder / SHIPPED_DASHBOARD.name).samefile(SHIPPED_DASHBOARD)
    # No clicks: visitors may view without logging in, and the home page is the dashboard.
    settings = environment("grafana")
    assert settings["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert settings["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    home = on_host("grafana", settings["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.samefile(SHIPPED_DASHBOARD)


def test_the_dashboards_data_source_is_the_provisioned_prometheus() -> None:
    data_sources = [d for file in grafana_provisioning("datasources") for d in file["datasources"]]
    [prometheus] = [d for d in data_sources if d["type"] == "prometheus"]
    assert prometheus["isDefault"] is True
    url = urlsplit(prometheus["url"])
    assert (url.hostname, url.port) == ("prometheus", PROMETHEUS_PORT)
    assert container_ports("prometheus") == {PROMETHEUS_PORT}
    # Grafana's rate intervals assume the interval Prometheus scrapes at.
    scrape_interval = prometheus_config()["global"]["scrape_interval"]
    assert prometheus["jsonData"]["timeInterval"] == scrape_interval

    dashboard = shipped_dashboard()
    # Provisioning fills in no `__inputs` (`${DS_...}`): a dashboard that needs them shows no data.
    assert "__inputs" not in dashboard
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    references = data_source_references(dashboard["panels"])
    assert references
    for reference in references:
        assert reference["type"] == prometheus["type"], reference
        uid = reference["uid"]
        chosen = re.fullmatch(r"\$\{(\w+)\}", uid)
        if chosen is None:
            assert uid == prometheus["uid"], reference
            continue
        # A data-source variable offers every data source of its plugin type; the provisioned
        # one is the only Prometheus, so it is the one the variable takes.
        variable = variables[chosen.group(1)]
        assert variable["type"] == "datasource"
        assert variable["query"] == prometheus["type"]
        current = variable.get("current", {}).get("value")
        assert current in (None, "", prometheus["uid"]), variable


def test_every_image_is_pinned_to_a_version() -> None:
    for name, spec in services().items():
        image = spec.get("image")
        assert image is not None or "build" in spec, name
        if image is None or "build" in spec:  # built here: named for this stack, not pulled
            continue
        # The tag follows the colon of the last path segment (a registry may name a port).
        _, colon, tag = image.rpartition("/")[2].partition(":")
        assert colon, f"{name}: {image} names no tag"
        assert tag, f"{name}: {image} names no tag"
        # A release, not a moving major line ("17") or "latest".
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?", tag), f"{name}: {image} is not a release"


def test_every_port_is_published_on_the_loopback_interface_only() -> None:
    for name, spec in services().items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_grafana_has_no_login_to_take_over() -> None:
    environment = service("grafana")["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert environment["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"
    assert environment["GF_AUTH_BASIC_ENABLED"] == "false"
