"""The `hookline` command as a user meets it: what it prints, its exit codes, and one plain
line on stderr (never a traceback) for a mistake the user can fix."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hookline.app.localstack.process import free_port
from hookline.runtime.kafka import admin_config
from hookline.runtime.settings import Settings
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
    created = [line for line in first.stdout.splitlines() if not line.startswith("registered")]
    assert created
    assert all(re.fullmatch(rf"created +{prefix}\.\S+", line) for line in created), created
    assert f"{prefix}.events" in {line.split()[1] for line in created}
    registered = [line for line in first.stdout.splitlines() if line.startswith("registered")]
    assert "registered event type task.created (built-in, version 1)" in registered

    again = _run("topics", "ensure", **env)
    assert again.returncode == 0, again
    ok = again.stdout.splitlines()  # the built-in event types are registered already
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


def test_stack_start_reuses_the_running_test_stack(services: Services, fresh_prefix: str) -> None:
    if services.how != "local stack":
        pytest.skip(f"the test services come from {services.how}, not the local stack")
    result = _run("stack", "start", HOOKLINE_DATA_DIR=str(REPO / ".hookline" / "test"))
    assert result.returncode == 0, result
    first = result.stdout.splitlines()[0]
    assert first.startswith("running: "), result.stdout  # reused, not started (never stopped)
    assert f"kafka {services.kafka_bootstrap}" in first
    assert f"export HOOKLINE_KAFKA_BOOTSTRAP={services.kafka_bootstrap}" in result.stdout
    # regression: only the bootstrap and database were exported, so the next step of a
    # newcomer, `topics ensure`, asked the one-node stack for 3 replicas and failed
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in result.stdout.splitlines()
        if line.startswith("export ")
    )
    assert exports["HOOKLINE_REPLICATION_FACTOR"] == "1"
    assert exports["HOOKLINE_MIN_INSYNC_REPLICAS"] == "1"
    ensured = _run("topics", "ensure", **exports, HOOKLINE_TOPIC_PREFIX=fresh_prefix)
    assert ensured.returncode == 0, ensured
    assert f"created  {fresh_prefix}.events" in ensured.stdout


def test_stack_status_shows_the_running_test_stack(services: Services) -> None:
    if services.how != "local stack":
        pytest.skip(f"the test services come from {services.how}, not the local stack")
    result = _run("stack", "status", HOOKLINE_DATA_DIR=str(REPO / ".hookline" / "test"))
    assert result.returncode == 0, result
    kafka, postgres = result.stdout.splitlines()
    assert re.fullmatch(rf"kafka +node 1  pid \d+  {services.kafka_bootstrap}", kafka), kafka
    assert re.fullmatch(r"postgres +pid \d+", postgres), postgres


def test_a_deliverer_without_its_backlog_topic_says_so_in_one_line(services: Services) -> None:
    from confluent_kafka.admin import AdminClient

    prefix, env = _fresh_topics(services)
    env["HOOKLINE_SECRET_KEY"] = "VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc="
    assert _run("topics", "ensure", **env).returncode == 0
    # a deployment upgraded without `topics ensure`: no backlog changelog yet
    backlog = f"{prefix}.deliverer-backlog"
    admin = AdminClient(admin_config(Settings(kafka_bootstrap=services.kafka_bootstrap)))
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


class _Listener:
    """A port some other program already listens on."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]

    def __enter__(self) -> _Listener:
        return self

    def __exit__(self, *_: object) -> None:
        self.socket.close()


def _says_port_taken(line: str, command: str, port: int) -> None:
    assert line == (
        f"hookline {command}: port {port} on 127.0.0.1 is already in use; choose another with"
        f" --api-port PORT or HOOKLINE_API_PORT=PORT"
    ), line


def test_up_on_a_taken_port_says_so_in_one_line(services: Services, tmp_path: Path) -> None:
    """Regression: a traceback ending in `address already in use`, with no word of how to
    choose another port."""
    _, env = _fresh_topics(services)
    env |= {
        "HOOKLINE_DATABASE_URL": services.database_url,
        "HOOKLINE_DATA_DIR": str(tmp_path),
    }
    with _Listener() as taken:
        result = _run("up", "--api-port", str(taken.port), **env)
    _says_port_taken(_one_error_line(result), "up", taken.port)
    assert result.stdout == ""


def test_up_on_a_taken_port_starts_no_stack(tmp_path: Path) -> None:
    """Regression: `up` started Kafka and PostgreSQL, then failed on the port and left them
    running; the port is now checked before anything starts."""
    from hookline.app.localstack.stack import stop_stack

    try:
        with _Listener() as taken:
            result = _run("up", HOOKLINE_API_PORT=str(taken.port), HOOKLINE_DATA_DIR=str(tmp_path))
        _says_port_taken(_one_error_line(result), "up", taken.port)
        assert not (tmp_path / "local" / "kafka").exists()
        assert not (tmp_path / "local" / "postgres").exists()
    finally:
        stop_stack(tmp_path / "local")  # what a regression would have left running


def test_the_api_on_a_taken_port_says_so_in_one_line(services: Services, fresh_prefix: str) -> None:
    _, env = _fresh_topics(services)
    env["HOOKLINE_TOPIC_PREFIX"] = fresh_prefix
    assert _run("topics", "ensure", **env).returncode == 0
    env |= {
        "HOOKLINE_DATABASE_URL": services.database_url,
        "HOOKLINE_ADMIN_TOKEN": "cli-admin-token-" + uuid.uuid4().hex,
        "HOOKLINE_SECRET_KEY": "VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc=",
    }
    with _Listener() as taken:
        result = _run("api", HOOKLINE_API_PORT=str(taken.port), **env)
    _says_port_taken(_one_error_line(result), "api", taken.port)


@pytest.mark.parametrize(
    "command", ["router", "deliverer", "projector", "replayer", "api", "outbox-relay"]
)
def test_a_service_started_before_topics_ensure_says_so_in_one_line(
    services: Services, command: str
) -> None:
    prefix, env = _fresh_topics(services)  # no `topics ensure`: not one topic exists
    env |= {
        "HOOKLINE_DATABASE_URL": services.database_url,
        "HOOKLINE_ADMIN_TOKEN": "cli-admin-token-" + uuid.uuid4().hex,
        "HOOKLINE_SECRET_KEY": "VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc=",
        "HOOKLINE_API_PORT": "0",
        "HOOKLINE_METRICS_PORT": "0",  # a running hookline must not make the port look taken
    }
    line = _one_error_line(_run(command, **env))
    assert line.startswith(f"hookline {command}: "), line
    assert f"{prefix}." in line  # names the missing topic
    assert "hookline topics ensure" in line


README_PUBLISHER = re.search(
    r"```python\n(from hookline.runtime.settings import Settings\n.*?)```",
    (REPO / "README.md").read_text(),
    re.DOTALL,
)


def _readme_publisher(**env: str) -> subprocess.CompletedProcess[str]:
    """The README's publishing snippet, as a newcomer pastes it into a file and runs it."""
    assert README_PUBLISHER is not None, "the README's Publisher snippet moved"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    return subprocess.run(
        [sys.executable, "-c", README_PUBLISHER.group(1)],
        env=clean | env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _short_traceback_ending_in(result: subprocess.CompletedProcess[str]) -> str:
    """The last line of a failed script's stderr, once the traceback above it is checked to
    be short: a few frames of the caller's, none of the library's plumbing."""
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 12, result.stderr
    assert "During handling of the above exception" not in result.stderr
    assert "The above exception was the direct cause" not in result.stderr
    return lines[-1]


def test_the_readme_publisher_without_kafka_names_the_setting() -> None:
    """Regression: a bare `ValueError: settings.kafka_bootstrap is not set`."""
    last = _short_traceback_ending_in(_readme_publisher())
    assert last.startswith("hookline.runtime.errors.SettingsError: HOOKLINE_KAFKA_BOOTSTRAP: "), (
        last
    )


def test_the_readme_publisher_before_topics_ensure_names_the_topic_and_the_command(
    services: Services,
) -> None:
    """Regression: some 50 lines of Kafka plumbing before the `SchemaStoreError`."""
    prefix, env = _fresh_topics(services)
    last = _short_traceback_ending_in(_readme_publisher(**env))
    assert last.startswith("producers.errors.PublisherUnavailable: cannot publish: "), last
    assert f"{prefix}.schemas" in last
    assert "hookline topics ensure" in last
