"""`hookline up` driven as a user would: a subprocess, HTTP in, a webhook out, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from hookline.app.localstack.process import free_port
from hookline.app.receiver import Receiver
from tests.conftest import Services
from tests.waiting import eventually, eventually_async

pytestmark = pytest.mark.e2e

HOOKLINE = str(Path(sys.executable).parent / "hookline")
READY_BOUND_S = 90.0


def _env(services: Services, data_dir: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "HOOKLINE_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "HOOKLINE_DATABASE_URL": services.database_url,
        "HOOKLINE_ADMIN_TOKEN": "e2e-admin-token-" + uuid.uuid4().hex,
        "HOOKLINE_SECRET_KEY": "VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc=",
        "HOOKLINE_TOPIC_PREFIX": f"e2e{uuid.uuid4().hex[:8]}",
        "HOOKLINE_REPLICATION_FACTOR": "1",
        "HOOKLINE_MIN_INSYNC_REPLICAS": "1",
        "HOOKLINE_PARTITIONS": "2",
        "HOOKLINE_API_PORT": str(port),
        "HOOKLINE_DATA_DIR": str(data_dir),
        "HOOKLINE_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8",
    }


@pytest.fixture
def running_up(
    services: Services, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    env = _env(services, tmp_path, free_port())
    process = subprocess.Popen(
        [HOOKLINE, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield process, env
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def _wait_for_line(process: subprocess.Popen[str], marker: str, timeout_s: float) -> list[str]:
    """The output lines up to the first holding `marker`."""
    assert process.stdout is not None
    stdout = process.stdout
    seen: list[str] = []
    os.set_blocking(stdout.fileno(), False)

    def marked() -> bool:
        while line := stdout.readline():
            seen.append(line.rstrip())
            if marker in line:
                return True
        assert process.poll() is None, f"exited before {marker!r}; output: {seen}"
        return False

    eventually(marked, f"{marker!r} in the output", timeout_s=timeout_s, detail=lambda: seen)
    return seen


async def _deliver_one(api_url: str, token: str) -> Receiver:
    headers = {"Authorization": f"Bearer {token}"}
    receiver = Receiver()
    await receiver.start()
    async with aiohttp.ClientSession(base_url=api_url, headers=headers) as api:
        body = {"url": receiver.url("/hook"), "event_types": ["task.*"]}
        async with api.post("/v1/subscriptions", json=body) as response:
            assert response.status == 201, await response.text()
            receiver.secrets.append((await response.json())["secret"])
        event = {
            "type": "task.created",
            "subject": {"type": "task", "id": "t-1"},
            "data": {"id": "t-1", "title": "up works", "project_id": "p", "assignee_id": None},
        }
        async with api.post("/v1/events", json=event) as response:
            assert response.status == 202, await response.text()
            event_id = (await response.json())["id"]
    await eventually_async(
        lambda: event_id in receiver.ids("/hook"), "the webhook arrives", timeout_s=60
    )
    await receiver.stop()
    assert receiver.ids("/hook")[:1] == [event_id]
    assert receiver.received[0].verified
    return receiver


def test_up_serves_delivers_refuses_a_second_and_stops_on_sigterm(
    running_up: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    process, env = running_up
    output = _wait_for_line(process, "hookline is up", READY_BOUND_S)
    api_url = f"http://127.0.0.1:{env['HOOKLINE_API_PORT']}"
    assert any(api_url in line for line in output)

    asyncio.run(_deliver_one(api_url, env["HOOKLINE_ADMIN_TOKEN"]))

    second = subprocess.run(
        [HOOKLINE, "up"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert "already running" in lines[0]

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    children = subprocess.run(
        ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False
    )
    assert children.stdout.strip() == ""
