"""Each service run on its own (as docker-compose runs them) says when it is ready, and
serves /readyz, /healthz and /metrics on a port of its own: before, only the API did, and
router and deliverer only with --metrics-port, and none of them printed anything."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from hookline.runtime.settings import Settings
from hookline.runtime.topics import ensure_topics
from tests.conftest import REPO, Services, TopicJanitor
from tests.e2e.conftest import ServiceProcess
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

LAG = "hookline_consumer_lag"
READY_API = re.compile(r"^api ready: listening on 127\.0\.0\.1:[1-9]", re.M)
SECRET_KEY = "VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc="


@dataclass(frozen=True, slots=True)
class Case:
    """A command, its extra arguments, what its ready line names, the metrics it serves."""

    command: str
    consumes: str
    metrics: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()


CASES = [
    Case(
        "router",
        r"consuming \S+\.events \(group \S+\.router\)",
        ("hookline_router_events_total", LAG),
    ),
    Case(
        "deliverer",
        r"consuming \S+\.deliveries \(group \S+\.deliverer\)",
        (
            LAG,
            "hookline_deliverer_tenant_attempts_total",
            "hookline_deliverer_lane_oldest_age_seconds",
            "hookline_deliverer_backlog_oldest_age_seconds",
        ),
    ),
    Case(
        "projector",
        r"consuming \S+\.deliveries, .* \(group \S+\.projector\) into PostgreSQL",
        ("hookline_projector_records_total", LAG),
    ),
    Case(
        "replayer",
        r"consuming \S+\.control \(group \S+\.replayer\)",
        ("hookline_replayer_jobs_total",),
    ),
    Case(
        "outbox-relay",
        r"relaying its PostgreSQL outbox to \S+\.events",
        extra=("--create-table",),
    ),
]


@pytest.fixture
def env(services: Services, topic_janitor: TopicJanitor) -> Iterator[dict[str, str]]:
    """A prefix of its own with its topics, an outbox in a schema of its own (a relay must
    not take other tests' rows), and the worktree's code in the child."""
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka_bootstrap=services.kafka_bootstrap,
        topic_prefix=prefix,
        partitions=2,
        replication_factor=1,
        min_insync_replicas=1,
    )
    ensure_topics(settings)
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {prefix}")
    own_schema = f"options=-csearch_path%3D{prefix}"
    separator = "&" if "?" in services.database_url else "?"
    try:
        yield {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "HOOKLINE_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
            "HOOKLINE_DATABASE_URL": services.database_url,
            "HOOKLINE_OUTBOX_DSN": f"{services.database_url}{separator}{own_schema}",
            "HOOKLINE_SECRET_KEY": SECRET_KEY,
            "HOOKLINE_TOPIC_PREFIX": prefix,
            "HOOKLINE_REPLICATION_FACTOR": "1",
            "HOOKLINE_MIN_INSYNC_REPLICAS": "1",
        }
    finally:
        topic_janitor.delete(lambda name: name.startswith(f"{prefix}."))
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {prefix} CASCADE")


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize("case", CASES, ids=[case.command for case in CASES])
def test_a_service_prints_its_ready_line_and_serves_its_probes(
    env: dict[str, str], tmp_path: Path, case: Case
) -> None:
    command = case.command
    service = ServiceProcess(command, env, tmp_path / f"{command}.log", *case.extra)
    try:
        where = rf"127\.0\.0\.1:{service.metrics_port}"
        line = re.compile(rf"^{command} ready: {case.consumes}, metrics on {where}$", re.M)
        eventually(
            lambda: service.process.poll() is None and line.search(service.output()),
            f"{command}'s ready line",
            timeout_s=90,
            detail=service.output,
        )
        status, body = _get(service.metrics_port, "/readyz")
        assert (status, json.loads(body)) == (200, {"status": "ready"})
        status, body = _get(service.metrics_port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        status, body = _get(service.metrics_port, "/metrics")
        assert status == 200
        for name in case.metrics:
            assert f"# TYPE {name} " in body, name
        service.stop()
        assert service.exit_code() == 0, service.output()
    finally:
        service.close()


def test_the_api_prints_its_ready_line(env: dict[str, str], tmp_path: Path) -> None:
    service = ServiceProcess(
        "api",
        {**env, "HOOKLINE_ADMIN_TOKEN": "t" * 40, "HOOKLINE_API_PORT": "0"},
        tmp_path / "api.log",
    )
    try:
        eventually(
            lambda: READY_API.search(service.output()),
            "the api's ready line",
            timeout_s=90,
            detail=service.output,
        )
        service.stop()
        assert service.exit_code() == 0, service.output()
    finally:
        service.close()
