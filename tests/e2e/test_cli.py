"""The `hookline` command as a user meets it: what it prints, its exit codes, and one plain
line on stderr (never a traceback) for a mistake the user can fix."""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest

from hookline.app.localstack.process import free_port
from tests.conftest import REPO, Services
from tests.e2e.conftest import HOOKLINE
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def _run(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`hookline argv…` with no HOOKLINE_* setting from the caller's environment but `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    return subprocess.run(
        [HOOKLINE, *argv],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _fresh_topics(services: Services) -> tuple[str, dict[str, str]]:
    """A topic prefix of the test's own, and the settings for one-replica topics under it."""
    prefix = f"cli{uuid.uuid4().hex[:8]}"
    return prefix, {
        "HOOKLINE_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "HOOKLINE_TOPIC_PREFIX": prefix,
        "HOOKLINE_PARTITIONS": "1",
        "HOOKLINE_REPLICATION_FACTOR": "1",
        "HOOKLINE_MIN_INSYNC_REPLICAS": "1",
    }


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_topics_ensure_creates_then_reports_ok(services: Services) -> None:
    prefix, env = _fresh_topics(services)
    first = _run("topics", "ensure", **env)
    assert first.returncode == 0, first
    created = first.stdout.splitlines()
    assert created
    assert all(re.fullmatch(rf"created +{prefix}\.\S+", line) for line in created), created
    assert f"{prefix}.events" in {line.split()[1] for line in created}

    again = _run("topics", "ensure", **env)
    assert again.returncode == 0, again
    ok = again.stdout.splitlines()
    assert all(re.fullmatch(rf"ok +{prefix}\.\S+", line) for line in ok), ok
    assert {line.split()[1] for line in ok} == {line.split()[1] for line in created}


def test_a_bad_setting_is_one_line_naming_the_variable() -> None:
    line = _one_error_line(_run("up", HOOKLINE_API_PORT="abc"))
    assert "HOOKLINE_API_PORT" in line


def test_a_weak_secret_key_is_refused_in_one_line() -> None:
    # regression: an all-zero key was accepted, and sealed every signing secret with it
    line = _one_error_line(
        _run("deliverer", HOOKLINE_SECRET_KEY="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    )
    assert line.startswith("hookline deliverer: HOOKLINE_SECRET_KEY: a weak key ("), line


def test_a_short_admin_token_is_refused_in_one_line() -> None:
    line = _one_error_line(_run("api", HOOKLINE_ADMIN_TOKEN="sixteen-chars-ok"))
    assert line == "hookline api: HOOKLINE_ADMIN_TOKEN: must be at least 32 characters", line


def test_a_service_refuses_to_start_without_kafka() -> None:
    line = _one_error_line(_run("router"))
    assert "HOOKLINE_KAFKA_BOOTSTRAP" in line


def test_stack_start_reuses_the_running_test_stack(services: Services) -> None:
    if services.how != "local stack":
        pytest.skip(f"the test services come from {services.how}, not the local stack")
    result = _run("stack", "start", HOOKLINE_DATA_DIR=str(REPO / ".hookline" / "test"))
    assert result.returncode == 0, result
    first = result.stdout.splitlines()[0]
    assert first.startswith("running: "), result.stdout  # reused, not started (never stopped)
    assert f"kafka {services.kafka_bootstrap}" in first
    assert f"export HOOKLINE_KAFKA_BOOTSTRAP={services.kafka_bootstrap}" in result.stdout


def test_a_deliverer_without_its_backlog_topic_says_so_in_one_line(services: Services) -> None:
    from confluent_kafka.admin import AdminClient

    prefix, env = _fresh_topics(services)
    env["HOOKLINE_SECRET_KEY"] = "VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc="
    assert _run("topics", "ensure", **env).returncode == 0
    # a deployment upgraded without `topics ensure`: no backlog changelog yet
    backlog = f"{prefix}.deliverer-backlog"
    admin = AdminClient({"bootstrap.servers": services.kafka_bootstrap})
    admin.delete_topics([backlog])[backlog].result(30)
    eventually(
        lambda: backlog not in admin.list_topics(timeout=10).topics,
        "the backlog topic deleted",
        interval_s=0.1,
    )
    result = _run("deliverer", **env)
    # the broker may log a transient warning first (a coordinator still loading): the
    # user's mistake is the last line, plain, with no traceback
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("hookline deliverer: topic "), line
    assert backlog in line
    assert "hookline topics ensure" in line


@pytest.mark.parametrize("extra", [(), ("--create-table",)], ids=["relay", "create-table"])
def test_an_outbox_relay_that_cannot_reach_its_database_says_so_in_one_line(
    services: Services, extra: tuple[str, ...]
) -> None:
    # regression: OutboxError (and psycopg's error under --create-table) was no
    # HooklineError, so a wrong --outbox-dsn ended in a traceback and exit code 1
    _, env = _fresh_topics(services)
    assert _run("topics", "ensure", **env).returncode == 0
    unreachable = f"postgresql://hookline@127.0.0.1:{free_port()}/hookline"
    line = _one_error_line(_run("outbox-relay", "--outbox-dsn", unreachable, *extra, **env))
    assert line.startswith("hookline outbox-relay: outbox: cannot "), line
    assert "Connection refused" in line, line
