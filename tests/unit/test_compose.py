"""docker-compose.yml stays in step with the settings object, keeps its data on its volumes,
checks every long-running service's health and refuses to start without its secrets (no
Docker engine needed: the file is read as YAML)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from hookline.runtime.settings import setting_names

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("api", "router", "deliverer", "projector", "replayer")
KAFKA_IMAGE_LOG_DIRS = "/tmp/kraft-combined-logs"  # noqa: S108 - the apache/kafka image's default


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_every_hookline_service_is_there_with_its_command() -> None:
    services = _compose()["services"]
    for name in SERVICES:
        assert services[name]["command"] == [name]
    assert services["topics"]["command"] == ["topics", "ensure"]
    assert {"kafka", "postgres"} <= set(services)


def test_every_hookline_variable_it_sets_is_a_setting() -> None:
    known = set(setting_names().values())
    seen: set[str] = set()
    for service in _compose()["services"].values():
        for name in service.get("environment", {}):
            if name.startswith("HOOKLINE_"):
                seen.add(name)
                assert name in known, f"{name} is not a hookline setting"
    assert {"HOOKLINE_KAFKA_BOOTSTRAP", "HOOKLINE_DATABASE_URL", "HOOKLINE_SECRET_KEY"} <= seen


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> named volume, for the service's named-volume mounts."""
    volumes = _compose().get("volumes") or {}
    mounts: dict[str, str] = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        if source in volumes:
            mounts[target] = source
    return mounts


def _on_a_volume(path: str, mounts: dict[str, str]) -> bool:
    return any(PurePosixPath(path).is_relative_to(target) for target in mounts)


def test_kafka_writes_its_log_to_the_mounted_volume() -> None:
    """Regression: the volume was mounted at /var/lib/kafka/data while the apache/kafka image
    wrote to its default /tmp/kraft-combined-logs, so recreating the container lost every
    topic. KAFKA_LOG_DIRS must be on a named volume."""
    kafka = _compose()["services"]["kafka"]
    log_dirs = str(kafka["environment"].get("KAFKA_LOG_DIRS", KAFKA_IMAGE_LOG_DIRS))
    mounts = _mounts(kafka)
    for log_dir in log_dirs.split(","):
        assert _on_a_volume(log_dir, mounts), f"KAFKA_LOG_DIRS {log_dir} is on no volume"


def test_postgres_keeps_its_data_on_the_mounted_volume() -> None:
    postgres = _compose()["services"]["postgres"]
    image, _, tag = postgres["image"].partition(":")
    assert image == "postgres"
    major = int(tag.split(".")[0])
    # the image's PGDATA moved from /var/lib/postgresql/data to a folder per version in 18
    default = "/var/lib/postgresql/data" if major < 18 else f"/var/lib/postgresql/{major}/docker"
    pgdata = str(postgres["environment"].get("PGDATA", default))
    assert _on_a_volume(pgdata, _mounts(postgres)), f"PGDATA {pgdata} is on no volume"


def test_every_long_running_service_checks_its_health() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        if service.get("restart") == "no":  # a one-shot job: `topics ensure`
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
    assert services["topics"]["restart"] == "no"


def test_the_api_healthcheck_asks_the_port_it_listens_on() -> None:
    api = _compose()["services"]["api"]
    port = api["environment"]["HOOKLINE_API_PORT"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(api["healthcheck"]["test"])
    assert f"{port}:{port}" in api["ports"]


def test_each_service_healthcheck_asks_a_port_of_its_own() -> None:
    services = _compose()["services"]
    ports = {}
    for name in SERVICES:
        found = re.search(
            r"127\.0\.0\.1:(\d+)/healthz", " ".join(services[name]["healthcheck"]["test"])
        )
        assert found, f"{name}: the healthcheck asks no /healthz"
        ports[name] = found.group(1)
    assert len(set(ports.values())) == len(ports), ports


@pytest.mark.parametrize("variable", ["HOOKLINE_ADMIN_TOKEN", "HOOKLINE_SECRET_KEY"])
def test_a_required_secret_stops_compose_when_unset(variable: str) -> None:
    """No default secret ships in the file: `${VAR:?message}` makes compose refuse to start
    (naming the variable) until it is set, for every hookline service and the topics job."""
    required = re.compile(rf"^\$\{{{variable}:\?.*{variable}.*\}}$")
    for name, service in _compose()["services"].items():
        if not str(service.get("image", "")).startswith("hookline"):
            continue
        value = str(service["environment"].get(variable, ""))
        assert required.match(value), f"{name}: {variable} is {value!r}"


def test_the_required_secrets_are_documented() -> None:
    header = (REPO / "docker-compose.yml").read_text().split("\nx-hookline")[0]
    operations = (REPO / "docs" / "operations.md").read_text()
    for variable in ("HOOKLINE_ADMIN_TOKEN", "HOOKLINE_SECRET_KEY"):
        assert f"export {variable}=" in header
        assert variable in operations.split("## Docker Compose")[1]


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _compose_plugin(), reason="the docker compose plugin is not installed")
def test_docker_compose_config_accepts_it() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        env={"HOOKLINE_ADMIN_TOKEN": "x" * 32, "HOOKLINE_SECRET_KEY": "k", "PATH": "/usr/bin"},
    )
    assert result.returncode == 0, result.stderr
