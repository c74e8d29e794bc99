"""`hookline up` under a flood of 20,000 connections that never finish their heads, more
than its open-files limit: its API fills only its share of its process's descriptors,
refuses the rest at once, keeps serving the client it admitted, and the deliverer keeps
delivering webhooks. Before the cap, when `up` ran every service in one process, ~19,800
such connections left the deliverer failing with "Too many open files"; each service now
has a process of its own, and the API still leaves its own process the descriptors its
Kafka clients need. The flood comes from flooder processes (tests/e2e/flooder.py), as many
as the test's own limit needs to hold 20,000."""

from __future__ import annotations

import http.client
import os
import resource
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hookline.app.localstack.process import free_port
from hookline.app.receiver import Receiver
from hookline.runtime.openfiles import OWN_FILES as API_RESERVE
from tests.conftest import REPO, Services
from tests.e2e.conftest import HOOKLINE, receiver_in_thread
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

FLOOD = 20_000
OWN_FILES = 300  # what a process keeps for itself besides the flood it holds


@pytest.fixture
def open_files() -> Iterator[int]:
    """This process's soft open-files limit raised as far as it goes (the `up` and the
    flooders started from it inherit it), put back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = FLOOD + OWN_FILES if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    yield raised
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def up(services: Services, tmp_path: Path) -> Iterator[tuple[int, str, subprocess.Popen[bytes]]]:
    """A `hookline up` of this worktree's code whose API may take every descriptor the
    reserve leaves (a cap far above the limit) and whose slow heads and idle connections
    stay open for the whole test: only the cap stands between the flood and the descriptors
    the API's own Kafka clients and database pool need."""
    port = free_port()
    token = "e2e-admin-token-" + uuid.uuid4().hex
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HOOKLINE_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "HOOKLINE_DATABASE_URL": services.database_url,
        "HOOKLINE_ADMIN_TOKEN": token,
        "HOOKLINE_SECRET_KEY": "VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc=",
        "HOOKLINE_TOPIC_PREFIX": f"e2e{uuid.uuid4().hex[:8]}",
        "HOOKLINE_REPLICATION_FACTOR": "1",
        "HOOKLINE_MIN_INSYNC_REPLICAS": "1",
        "HOOKLINE_PARTITIONS": "2",
        "HOOKLINE_API_PORT": str(port),
        "HOOKLINE_DATA_DIR": str(tmp_path),
        "HOOKLINE_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8",
        "HOOKLINE_API_MAX_CONNECTIONS": "10000000",
        "HOOKLINE_API_HEADER_TIMEOUT_S": "3600",
        "HOOKLINE_API_IDLE_TIMEOUT_S": "3600",
    }
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen([HOOKLINE, "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield port, token, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


def _call(
    conn: http.client.HTTPConnection, method: str, path: str, token: str, body: object = None
) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(method, path, body=None if body is None else orjson.dumps(body), headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def _flooder(port: int, count: int, held: ExitStack) -> subprocess.Popen[str]:
    """A process holding `count` never-ending heads against the API until the test ends."""
    flooder = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.flooder", str(port), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )

    def stop() -> None:
        if flooder.stdin is not None:
            flooder.stdin.close()  # its cue to let go of the connections and exit
        if flooder.stdout is not None:
            flooder.stdout.close()
        try:
            flooder.wait(30)
        except subprocess.TimeoutExpired:
            flooder.kill()
            flooder.wait(10)

    held.callback(stop)
    return flooder


def _samples(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


@pytest.mark.timeout(600)
def test_up_keeps_delivering_with_its_api_flooded(
    open_files: int, up: tuple[int, str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, token, process = up

    def ready() -> bool:
        assert process.poll() is None, (tmp_path / "up.log").read_text(errors="replace")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    eventually(ready, "hookline up serves", timeout_s=120, interval_s=0.5)

    receiver = Receiver()
    with receiver_in_thread(receiver), ExitStack() as held:
        admitted = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        held.callback(admitted.close)
        subscription = {"url": receiver.url("/hook"), "event_types": ["task.*"]}
        status, body = _call(admitted, "POST", "/v1/subscriptions", token, subscription)
        assert status == 201, body
        receiver.secrets.append(orjson.loads(body)["secret"])

        processes = -(-FLOOD // (open_files - OWN_FILES))
        shares = [FLOOD // processes + (i < FLOOD % processes) for i in range(processes)]
        flooders = [_flooder(port, count, held) for count in shares]
        counts = [flooder.stdout.readline().split() for flooder in flooders if flooder.stdout]
        assert [(int(c[1]), int(c[3])) for c in counts] == [(n, 0) for n in shares], counts

        with socket.create_connection(("127.0.0.1", port), timeout=30) as late:
            assert late.recv(64).startswith(b"HTTP/1.1 503 "), "the API is not at its cap"

        event = {
            "type": "task.created",
            "subject": {"type": "task", "id": "t-1"},
            "data": {"id": "t-1", "title": "flooded", "project_id": "p", "assignee_id": None},
        }
        status, body = _call(admitted, "POST", "/v1/events", token, event)
        assert status == 202, body
        event_id = orjson.loads(body)["id"]
        eventually(
            lambda: event_id in receiver.ids("/hook"),
            f"the webhook arrives with {FLOOD} connections held against the API",
            timeout_s=90,
        )
        assert receiver.received[0].verified

        status, body = _call(admitted, "GET", "/metrics", token)
        metrics = _samples(body.decode())
        assert 0 < metrics["hookline_api_connections"] <= open_files - API_RESERVE
        assert metrics["hookline_api_connections_refused_total"] > 0

    process.terminate()
    assert process.wait(60) == 0, (tmp_path / "up.log").read_text(errors="replace")
