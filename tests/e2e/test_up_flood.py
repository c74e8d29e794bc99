"""`hookline up` under a flood of connections that never finish their heads, as many as the
machine lets this test hold (20,000 where the hard open-files limit allows): its API fills
only its share of the process's descriptors, refuses the rest at once, keeps serving the
client it admitted, and the deliverer in the same process keeps delivering webhooks.
Before the cap, ~19,800 such connections left the deliverer failing with "Too many open
files"."""

from __future__ import annotations

import http.client
import os
import resource
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hookline.app.localstack.process import free_port
from hookline.app.receiver import Receiver
from hookline.app.up import reserved_files
from tests.conftest import REPO, Services
from tests.e2e.conftest import HOOKLINE, receiver_in_thread
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

FLOOD = 20_000
OWN_FILES = 300  # what this test process keeps for itself: pytest, the receiver, its client
PARTIAL_HEAD = b"POST /v1/events HTTP/1.1\r\nHost: api\r\nX-Slow: "


@pytest.fixture
def open_files() -> Iterator[int]:
    """This process's soft open-files limit raised as far as it goes (the `up` started from
    it inherits it), put back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = FLOOD + OWN_FILES if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    yield raised
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def up(services: Services, tmp_path: Path) -> Iterator[tuple[int, str, subprocess.Popen[bytes]]]:
    """A `hookline up` of this worktree's code whose API may take every descriptor the
    reserve leaves (a cap far above the limit) and whose slow heads and idle connections
    stay open for the whole test: only the cap stands between the flood and the deliverer."""
    port = free_port()
    token = "e2e-admin-token-" + uuid.uuid4().hex
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HOOKLINE_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "HOOKLINE_DATABASE_URL": services.database_url,
        "HOOKLINE_ADMIN_TOKEN": token,
        "HOOKLINE_SECRET_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
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

        flood = min(FLOOD, open_files - OWN_FILES)
        for _ in range(flood):
            sock = held.enter_context(socket.create_connection(("127.0.0.1", port), timeout=30))
            sock.sendall(PARTIAL_HEAD)

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
            f"the webhook arrives with {flood} connections held against the API",
            timeout_s=90,
        )
        assert receiver.received[0].verified

        status, body = _call(admitted, "GET", "/metrics", token)
        metrics = _samples(body.decode())
        assert 0 < metrics["hookline_api_connections"] <= open_files - reserved_files()
        assert metrics["hookline_api_connections_refused_total"] > 0

    process.terminate()
    assert process.wait(60) == 0, (tmp_path / "up.log").read_text(errors="replace")
