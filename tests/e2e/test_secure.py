"""hookline on a secured Kafka: `hookline stack start --secure` (SASL_SSL, SCRAM-SHA-512, a
local CA), the platform given only the environment it prints, and a wrong password."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hookline.app.localstack.process import free_port
from tests.conftest import REPO
from tests.e2e.conftest import HOOKLINE, ServiceProcess
from tests.e2e.test_up import READY_BOUND_S, _deliver_one, _wait_for_line
from tests.waiting import eventually, eventually_async

pytestmark = pytest.mark.e2e

SECRET_KEY = "VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc="


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the suite's HOOKLINE_* settings (its plain broker)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")} | extra


@pytest.fixture(scope="session")
def secure_exports() -> Iterator[dict[str, str]]:
    """A `--secure` local stack of the session's own, and the `export` lines it printed."""
    folder = REPO / ".hookline" / "test" / f"secure-{uuid.uuid4().hex[:8]}"
    from hookline.runtime.settings import Settings

    env = _clean_env(
        HOOKLINE_DATA_DIR=str(folder), HOOKLINE_CACHE_DIR=str(Settings.load().cache_dir)
    )
    try:
        started = subprocess.run(
            [HOOKLINE, "stack", "start", "--secure"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert started.returncode == 0, started
        yield dict(
            line.removeprefix("export ").split("=", 1)
            for line in started.stdout.splitlines()
            if line.startswith("export ")
        )
    finally:
        subprocess.run([HOOKLINE, "stack", "stop"], env=env, timeout=120, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_the_secure_stack_prints_every_setting_a_client_needs(
    secure_exports: dict[str, str],
) -> None:
    assert secure_exports["HOOKLINE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert secure_exports["HOOKLINE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert secure_exports["HOOKLINE_KAFKA_SASL_USERNAME"] == "hookline"
    assert len(secure_exports["HOOKLINE_KAFKA_SASL_PASSWORD"]) >= 32
    assert Path(secure_exports["HOOKLINE_KAFKA_SSL_CA_LOCATION"]).is_file()


@pytest.mark.parametrize("command", [["topics", "ensure"], ["router", "--metrics-port", "0"]])
def test_a_wrong_password_fails_at_once_with_one_line_naming_the_setting(
    secure_exports: dict[str, str], command: list[str]
) -> None:
    """Regression: a refused SCRAM login surfaced as transport errors, waited out as a broker
    outage for minutes (120 s of `waiting for the broker` for the router) before a line that
    named no setting."""
    wrong = secure_exports | {
        "HOOKLINE_KAFKA_SASL_PASSWORD": "not-the-password",
        "HOOKLINE_TOPIC_PREFIX": f"w{uuid.uuid4().hex[:8]}",
    }
    result = subprocess.run(
        [HOOKLINE, *command],
        env=_clean_env(**wrong),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"hookline {command[0]}: Kafka refused the login: check ")
    assert "HOOKLINE_KAFKA_SASL_PASSWORD" in lines[0]
    assert "not-the-password" not in lines[0]


async def _history(api_url: str, token: str, event_id: str) -> list[dict[str, Any]]:
    """The event's deliveries in the API's history, once one is delivered."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(base_url=api_url, headers=headers) as api,
        api.get("/v1/deliveries", params={"event_id": event_id}) as response,
    ):
        assert response.status == 200, await response.text()
        rows: list[dict[str, Any]] = (await response.json())["data"]
    return rows if any(row["status"] == "delivered" for row in rows) else []


def test_up_publishes_routes_delivers_and_records_over_sasl_ssl(
    secure_exports: dict[str, str], tmp_path: Path
) -> None:
    """`hookline up` given only the documented environment (what `stack start --secure`
    printed, plus the admin token and secret key): publish -> route -> deliver -> history,
    every Kafka client over TLS with SCRAM-SHA-512."""
    port = free_port()
    env = _clean_env(
        **secure_exports,
        HOOKLINE_ADMIN_TOKEN="e2e-admin-token-" + uuid.uuid4().hex,
        HOOKLINE_SECRET_KEY=SECRET_KEY,
        HOOKLINE_TOPIC_PREFIX=f"s{uuid.uuid4().hex[:8]}",
        HOOKLINE_API_PORT=str(port),
        HOOKLINE_DATA_DIR=str(tmp_path),
        HOOKLINE_ALLOWED_TARGET_NETWORKS="127.0.0.0/8",
    )
    process = subprocess.Popen(
        [HOOKLINE, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_for_line(process, "hookline is up", READY_BOUND_S)
        api_url = f"http://127.0.0.1:{port}"
        receiver = asyncio.run(_deliver_one(api_url, env["HOOKLINE_ADMIN_TOKEN"]))
        event_id = receiver.ids("/hook")[0]
        rows = asyncio.run(
            eventually_async(
                lambda: _history(api_url, env["HOOKLINE_ADMIN_TOKEN"], event_id),
                "the delivery in the history",
                timeout_s=60,
            )
        )
        assert rows[0]["event_id"] == event_id
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def secure_env(secure_exports: dict[str, str]) -> dict[str, str]:
    """The printed environment, a topic prefix of the module's own and its topics."""
    env = _clean_env(
        **secure_exports,
        PYTHONPATH=str(REPO),
        HOOKLINE_SECRET_KEY=SECRET_KEY,
        HOOKLINE_ADMIN_TOKEN="e2e-admin-token-" + uuid.uuid4().hex,
        HOOKLINE_TOPIC_PREFIX=f"s{uuid.uuid4().hex[:8]}",
    )
    ensured = subprocess.run(
        [HOOKLINE, "topics", "ensure"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ensured.returncode == 0, ensured
    return env


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("router", ()),
        ("deliverer", ()),
        ("projector", ()),
        ("replayer", ()),
        ("outbox-relay", ("--create-table",)),
    ],
)
def test_every_service_gets_ready_on_the_secure_stack(
    secure_env: dict[str, str], tmp_path: Path, command: str, extra: tuple[str, ...]
) -> None:
    """Each service run on its own, given only the printed environment, connects over
    SASL_SSL with SCRAM, reports ready and stops cleanly."""
    service = ServiceProcess(command, secure_env, tmp_path / f"{command}.log", *extra)
    try:
        eventually(
            lambda: service.process.poll() is None and _ready(service.metrics_port),
            f"{command} ready on the secure stack",
            timeout_s=90,
            detail=service.output,
        )
        service.stop()
        assert service.exit_code() == 0, service.output()
    finally:
        service.close()
