"""Services for the tests: the environment first, then the project's local stack, then
testcontainers where a Docker engine answers (psycopg's --test-dsn fixture is the model)."""

from __future__ import annotations

import os
import queue
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hookline.runtime.settings import Secret, Settings

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Services:
    kafka_bootstrap: str
    database_url: str
    how: str


def _docker_answers() -> bool:
    """True when a Docker engine answers its ping (the `docker` command alone is not enough)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            name, _, port = host.removeprefix("tcp://").partition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (name, int(port or 2375))
        else:
            return False
        with sock:
            sock.settimeout(2)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(256)
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    bootstrap = os.environ.get("HOOKLINE_KAFKA_BOOTSTRAP")
    database_url = os.environ.get("HOOKLINE_DATABASE_URL")
    if bootstrap and database_url:
        yield Services(bootstrap, database_url, "environment")
        return
    if os.environ.get("HOOKLINE_TEST_STACK", "local") == "docker" or (
        os.environ.get("HOOKLINE_TEST_STACK") is None and _docker_answers()
    ):
        yield from _containers()
        return
    from hookline.app.localstack.stack import start_stack, stop_stack

    folder = REPO / ".hookline" / "test" / "local"
    stack = start_stack(folder, cache_dir=Settings.load().cache_dir)
    yield Services(stack.kafka_bootstrap, stack.database_url, "local stack")
    if not stack.reused and not os.environ.get("HOOKLINE_KEEP_STACK"):
        stop_stack(folder)


def _containers() -> Iterator[Services]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        PostgresContainer("postgres:16", driver=None) as postgres,
    ):
        yield Services(kafka.get_bootstrap_server(), postgres.get_connection_url(), "docker")


@pytest.fixture(scope="session")
def kafka_bootstrap(services: Services) -> str:
    return services.kafka_bootstrap


@pytest.fixture(scope="session")
def database_url(services: Services) -> str:
    return services.database_url


class TopicJanitor:
    """Deletes the topics each test made, on a thread of its own so no test waits for it: a
    broker holds files open for every partition, and a suite (or many runs on one local
    stack) that kept them all ran it out of file descriptors."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._wanted: queue.Queue[Callable[[str], bool] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="topic-janitor", daemon=True)
        self._thread.start()

    def delete(self, wanted: Callable[[str], bool]) -> None:
        self._wanted.put(wanted)

    def close(self, timeout_s: float = 60.0) -> None:
        self._wanted.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        from confluent_kafka.admin import AdminClient

        from hookline.runtime.kafka import admin_config

        admin = AdminClient(admin_config(Settings(kafka_bootstrap=self._bootstrap)))
        while (wanted := self._wanted.get()) is not None:
            try:
                names = [name for name in admin.list_topics(timeout=10).topics if wanted(name)]
                for future in admin.delete_topics(names, request_timeout=10).values():
                    future.result(timeout=15)
            except Exception:  # noqa: BLE001, S112 - cleanup only: a broken broker keeps them
                continue


@pytest.fixture(scope="session")
def topic_janitor(services: Services) -> Iterator[TopicJanitor]:
    janitor = TopicJanitor(services.kafka_bootstrap)
    yield janitor
    janitor.close()


@pytest.fixture
def topic_name(topic_janitor: TopicJanitor) -> Iterator[Callable[[str], str]]:
    """Fresh, uuid-suffixed topic names, so tests never see each other's records; the topics
    are deleted after the test."""
    made: set[str] = set()

    def make(base: str) -> str:
        name = f"test.{base}.{uuid.uuid4().hex[:12]}"
        made.add(name)
        return name

    yield make
    topic_janitor.delete(made.__contains__)


@pytest.fixture
def settings(services: Services, topic_janitor: TopicJanitor) -> Iterator[Settings]:
    """Settings on the test services with a topic prefix of this test's own; the topics under
    that prefix are deleted after the test."""
    made = Settings(
        kafka_bootstrap=services.kafka_bootstrap,
        database_url=Secret(services.database_url),
        admin_token=Secret("test-admin-token-" + uuid.uuid4().hex),
        secret_key=Secret("VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc="),
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        partitions=3,
        replication_factor=1,
        min_insync_replicas=1,
        allowed_target_networks=(),
        data_dir=REPO / ".hookline" / "test",
    )
    yield made
    prefix = f"{made.topic_prefix}."
    topic_janitor.delete(lambda name: name.startswith(prefix))
