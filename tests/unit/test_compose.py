"""docker-compose.yml stays in step with the settings object (no Docker engine needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hookline.runtime.settings import setting_names

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("api", "router", "deliverer", "projector", "replayer")


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
