"""`hookline up` driven as a user would: a subprocess, HTTP in, a webhook out, SIGTERM; its
five services are processes of their own, which it restarts, stops, and takes with it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
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
from hookline.runtime.settings import Settings
from tests.conftest import REPO, Services
from tests.waiting import eventually, eventually_async

pytestmark = pytest.mark.e2e

HOOKLINE = str(Path(sys.executable).parent / "hookline")
READY_BOUND_S = 90.0
SERVICES = {"api", "router", "deliverer", "projector", "replayer"}


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


def _services(env: dict[str, str]) -> dict[str, int]:
    """The service processes started with `env`'s topic prefix (the test's own), by name: read
    from /proc, so they are found even once `up` is gone and they belong to no one."""
    marker = f"HOOKLINE_TOPIC_PREFIX={env['HOOKLINE_TOPIC_PREFIX']}".encode()
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, gone, or not ours
            continue
        if marker in environ and b"hookline.app.cli" in command:  # `-m hookline.app.cli NAME`
            found[command[command.index(b"hookline.app.cli") + 1].decode()] = int(entry.name)
    return found


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state


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
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), True)
    assert process.stdout.read().splitlines()[-1] == "stopped"
    children = subprocess.run(
        ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False
    )
    assert children.stdout.strip() == ""


def _up_until_ready_then_interrupt(env: dict[str, str], *flags: str) -> tuple[list[str], list[int]]:
    """`hookline up` started, ready, then Ctrl-C (SIGINT): its output and the pids of the
    local stack while it ran."""
    from hookline.app.localstack.stack import stack_pids

    process = subprocess.Popen(
        [HOOKLINE, "up", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = _wait_for_line(process, "Ctrl-C or SIGTERM stops it.", READY_BOUND_S)
        running = stack_pids(Path(env["HOOKLINE_DATA_DIR"]) / "local")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), True)
        output += process.stdout.read().splitlines()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
    pids = [pid for part in running.values() for pid in part]
    assert len(pids) == 2, (running, output)
    return output, pids


@pytest.fixture
def own_data_dir() -> Iterator[Path]:
    """A data folder of the test's own beside the suite's stack: not under pytest's temporary
    folder, which a concurrent pytest session makes private again (0700), locking the local
    PostgreSQL's `postgres` user out of its own cluster and `pg_ctl stop` with it."""
    from hookline.app.localstack.stack import stop_stack

    folder = REPO / ".hookline" / "test" / f"up-{uuid.uuid4().hex[:8]}"
    yield folder
    stop_stack(folder / "local")
    shutil.rmtree(folder, ignore_errors=True)


def test_up_stops_the_stack_it_started_unless_told_to_keep_it(own_data_dir: Path) -> None:
    """Regression: after Ctrl-C, `up` left the Kafka and PostgreSQL it had started running,
    silently. This test's data folder is its own, so `up` starts a second local stack (a
    second broker beside the suite's), which the fixture stops whatever happens."""
    from hookline.app.localstack.process import pid_alive

    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env = clean | {
        "HOOKLINE_DATA_DIR": str(own_data_dir),
        "HOOKLINE_API_PORT": str(free_port()),
        "HOOKLINE_CACHE_DIR": str(Settings.load().cache_dir),  # Kafka's jars, fetched once
    }
    output, pids = _up_until_ready_then_interrupt(env)
    assert output[-2:] == ["stopping the local Kafka and PostgreSQL it started...", "stopped"]
    assert not [pid for pid in pids if pid_alive(pid)], output

    output, pids = _up_until_ready_then_interrupt(env, "--keep-stack")
    assert output[-1] == "stopped"
    assert (
        "the local Kafka and PostgreSQL keep running (--keep-stack);"
        " `hookline stack stop` stops them"
    ) in output
    assert all(pid_alive(pid) for pid in pids), output


def test_up_runs_each_service_as_its_own_process_and_restarts_one_killed(
    running_up: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    process, env = running_up
    _wait_for_line(process, "hookline is up", READY_BOUND_S)
    services = _services(env)
    assert set(services) == SERVICES
    assert {_parent(pid) for pid in services.values()} == {process.pid}

    os.kill(services["deliverer"], signal.SIGKILL)
    seen = _wait_for_line(process, "deliverer is ready again", READY_BOUND_S)
    assert any(
        "deliverer exited (killed by SIGKILL); restarting it in 1 s" in line for line in seen
    ), seen
    restarted = _services(env)
    assert restarted["deliverer"] != services["deliverer"]
    assert _parent(restarted["deliverer"]) == process.pid
    api_url = f"http://127.0.0.1:{env['HOOKLINE_API_PORT']}"
    asyncio.run(_deliver_one(api_url, env["HOOKLINE_ADMIN_TOKEN"]))

    process.send_signal(signal.SIGINT)  # Ctrl-C
    assert process.wait(timeout=60) == 0
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), True)
    assert process.stdout.read().splitlines()[-1] == "stopped"
    eventually(lambda: not _services(env), "every service process gone", timeout_s=30)


def test_the_services_stop_when_up_is_killed(
    running_up: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    """`up` killed with SIGKILL cannot stop its children itself: Linux tells them to."""
    process, env = running_up
    _wait_for_line(process, "hookline is up", READY_BOUND_S)
    assert set(_services(env)) == SERVICES
    process.kill()
    process.wait(10)
    eventually(
        lambda: not _services(env),
        "every service process gone",
        timeout_s=60,
        detail=lambda: _services(env),
    )


def test_a_service_that_cannot_start_stops_up_in_one_line(
    services: Services, tmp_path: Path
) -> None:
    """The user's mistake reaches the services only: an address no interface has, for their
    metrics. Each service says so in its own line; `up` says the first, once, and stops."""
    env = _env(services, tmp_path, free_port()) | {"HOOKLINE_METRICS_HOST": "192.0.2.1"}
    result = subprocess.run(
        [HOOKLINE, "up"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(
        r"hookline up: (router|deliverer|projector|replayer): cannot serve metrics on"
        r" 192\.0\.2\.1:0: .*",
        lines[0],
    ), lines
    assert result.stdout == ""
    assert _services(env) == {}
