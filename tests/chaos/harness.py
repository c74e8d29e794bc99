"""The chaos suite's moving parts: service processes to kill, a steady publisher, the
subscriptions and the receiver paths they point at.

Each service runs as its own `hookline <service>` process so `kill -9` is real. A crashed
process (one that exits without being killed by the suite) is restarted, as a process
manager would, and recorded: the tests fail on any such crash.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from core.filters import FilterValue
from core.json_value import JsonValue
from core.matching import matches
from core.records import DomainEvent, Ref, StoredSecret, Subscription, utc_ms
from core.secretbox import SecretBox
from core.signing import generate_secret
from hookline.runtime.codecs import open_codec
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from producers.errors import PublishFailed
from producers.publisher import Publisher
from tests.factories import subscription

SERVICES: Final = ("router", "deliverer", "projector")
EVENT_TYPES: Final = ("task.created", "task.assigned", "meeting.ended")


# -- service processes ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Crash:
    """A service process that exited without being told to."""

    service: str
    returncode: int
    log_tail: str


def service_environment(settings: Settings) -> dict[str, str]:
    assert settings.kafka_bootstrap is not None
    assert settings.database_url is not None
    assert settings.secret_key is not None
    assert settings.admin_token is not None
    return {
        **os.environ,
        "HOOKLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HOOKLINE_DATABASE_URL": settings.database_url.value,
        "HOOKLINE_SECRET_KEY": settings.secret_key.value,
        "HOOKLINE_ADMIN_TOKEN": settings.admin_token.value,
        "HOOKLINE_TOPIC_PREFIX": settings.topic_prefix,
        "HOOKLINE_PARTITIONS": str(settings.partitions),
        "HOOKLINE_REPLICATION_FACTOR": str(settings.replication_factor),
        "HOOKLINE_MIN_INSYNC_REPLICAS": str(settings.min_insync_replicas),
        "HOOKLINE_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8",
        "HOOKLINE_RETRY_DELAYS_S": ",".join(str(d) for d in settings.retry_delays_s),
        "HOOKLINE_DELIVERY_TIMEOUT_S": str(settings.delivery_timeout_s),
        "HOOKLINE_DATA_DIR": str(settings.data_dir),
        "HOOKLINE_LOG_LEVEL": "WARNING",
        "HOOKLINE_METRICS_PORT": "0",  # any free port: processes of a test may overlap
    }


def _argv(service: str, instance_id: str) -> list[str]:
    script = Path(sys.executable).parent / "hookline"
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "hookline.app.cli"]
    if service == "router":
        # a stable instance id: the restarted router fences its predecessor at once
        return [*prefix, "router", "--instance-id", instance_id, "--batch-max-events", "200"]
    return [*prefix, service]


class ServiceProcess:
    """One `hookline <service>` process, restartable; output appended to `log`. Routers
    running side by side need their own `instance_id`s, or each fences the other."""

    def __init__(
        self, service: str, env: Mapping[str, str], log: Path, *, instance_id: str = "chaos"
    ) -> None:
        self.service = service
        self.instance_id = instance_id
        self.log = log
        self.starts = 0
        self._env = dict(env)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self._process is None or self._process.poll() is not None
        with self.log.open("ab") as sink:
            sink.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            sink.flush()
            self._process = subprocess.Popen(
                _argv(self.service, self.instance_id),
                env=self._env,
                stdout=sink,
                stderr=sink,
                stdin=subprocess.DEVNULL,
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no drain, no commit, no goodbye to the group."""
        assert self._process is not None
        self._process.kill()
        self._process.wait(10)
        self._process = None

    @property
    def running(self) -> bool:
        """Started and not killed since (it may have exited on its own: see `crashed`)."""
        return self._process is not None

    def crashed(self) -> Crash | None:
        """The crash when the process exited on its own since it was started."""
        if self._process is None or self._process.poll() is None:
            return None
        returncode = self._process.returncode
        self._process = None
        return Crash(self.service, returncode, self.tail())

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait: the exit code (0 = drained and committed)."""
        process, self._process = self._process, None
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            return -signal.SIGKILL

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


# -- subscriptions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """A subscription of the suite and the receiver path it points at."""

    name: str
    event_types: tuple[str, ...]
    filter: Mapping[str, FilterValue] = field(default_factory=dict)
    tenant: str = "default"

    @property
    def path(self) -> str:
        return f"/{self.name}"


ROUTES: Final = (
    Route("all", ("*",)),
    Route("tasks", ("task.*",)),
    Route("created-p1", ("task.created",), {"project_id": "p-1"}),
    Route("meetings", ("meeting.ended",)),
    Route("flaky", ("task.assigned",)),  # the receiver fails each first request: retry tiers
    Route("elsewhere", ("*",), tenant="globex"),  # no event of the suite may reach it
)
FLAKY_PATH: Final = "/flaky"


@dataclass(frozen=True, slots=True)
class Subscribed:
    subscriptions: tuple[Subscription, ...]
    secrets: tuple[str, ...]
    by_path: Mapping[str, Subscription]


def subscribe(settings: Settings, base_url: str) -> Subscribed:
    """Write one subscription per route to the subscriptions topic."""
    assert settings.secret_key is not None
    box = SecretBox.from_base64(settings.secret_key.value)
    runtime = open_codec(settings, client_id="chaos-subscriptions")
    log = SubscriptionLog(settings, runtime.codec, client_id="chaos-subscriptions")
    subs: list[Subscription] = []
    secrets: list[str] = []
    try:
        for route in ROUTES:
            sub_id = str(uuid.uuid4())
            secret = generate_secret()
            now = utc_ms(datetime.now(UTC))
            sub = subscription(
                sub_id,
                *route.event_types,
                at=now,
                tenant=route.tenant,
                url=base_url + route.path,
                filter=dict(route.filter),
                description=f"chaos {route.name}",
                secrets=(StoredSecret(box.seal(secret, subscription_id=sub_id), None),),
            )
            log.put(sub)
            subs.append(sub)
            secrets.append(secret)
    finally:
        log.close()
        runtime.close()
    by_path = {route.path: sub for route, sub in zip(ROUTES, subs, strict=True)}
    return Subscribed(tuple(subs), tuple(secrets), by_path)


def expected_pairs(
    events: Sequence[DomainEvent], subscriptions: Sequence[Subscription]
) -> set[tuple[str, str]]:
    """(event id, subscription id) for every delivery the events call for."""
    return {(e.id, s.id) for e in events for s in subscriptions if matches(s, e)}


# -- steady load ---------------------------------------------------------------------------


def make_event(
    rng: random.Random, n: int, event_type: str | None = None
) -> tuple[str, Ref, dict[str, JsonValue]]:
    event_type = event_type or EVENT_TYPES[n % len(EVENT_TYPES)]
    subject_id = f"{event_type.split('.')[0]}-{rng.randrange(500)}"
    data: dict[str, JsonValue]
    match event_type:
        case "task.created":
            data = {
                "id": subject_id,
                "title": f"task {n}",
                "project_id": f"p-{rng.randrange(2)}",
                "assignee_id": None,
            }
        case "task.assigned":
            data = {
                "id": subject_id,
                "title": f"task {n}",
                "assignee_id": f"u-{rng.randrange(9)}",
                "previous_assignee_id": None,
            }
        case _:
            data = {
                "id": subject_id,
                "title": f"meeting {n}",
                "ended_at": datetime.now(UTC).isoformat(),
                "attendee_ids": ["u-1", "u-2"],
            }
    return event_type, Ref(event_type.split(".")[0], subject_id), data


class SteadyLoad:
    """Publishes events at `rate_per_s` on a thread; `accepted` = acknowledged by Kafka."""

    def __init__(self, settings: Settings, *, rate_per_s: float, seed: int) -> None:
        self._publisher = Publisher(settings, client_id="chaos-load")
        self._rate_per_s = rate_per_s
        self._rng = random.Random(seed)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)
        self._lock = threading.Lock()
        self.submitted: list[DomainEvent] = []
        self._futures: list[concurrent.futures.Future[str]] = []
        self.accepted: list[DomainEvent] = []
        self.refused: list[DomainEvent] = []

    def publish_now(self, count: int) -> list[DomainEvent]:
        """Publish `count` events (every type at least once) and wait for their acks."""
        events = [self._submit(n) for n in range(count)]
        for future in self._futures:
            future.result(60)
        return events

    def publish_burst(self, count: int, event_type: str) -> None:
        """`count` events of one type at once, beside the steady load (acks awaited in
        `stop`, like the load's)."""
        for n in range(count):
            self._submit(n, event_type)

    def start(self) -> None:
        self._thread.start()

    def accepted_of_first(self, count: int) -> list[DomainEvent] | None:
        """The accepted ones of the first `count` events submitted, once every one of them
        has its outcome; None while some wait for theirs."""
        with self._lock:
            pairs = list(zip(self.submitted[:count], self._futures[:count], strict=True))
        if not all(future.done() for _, future in pairs):
            return None
        return [event for event, future in pairs if future.exception() is None]

    def _submit(self, n: int, event_type: str | None = None) -> DomainEvent:
        event_type, subject, data = make_event(self._rng, n, event_type)
        event_id = str(uuid.uuid4())
        occurred = datetime.now(UTC)
        future = self._publisher.submit(
            event_type, subject=subject, data=data, id=event_id, occurred_at=occurred
        )
        event = DomainEvent(
            id=event_id,
            type=event_type,
            tenant="default",
            occurred_at=occurred,
            subject=subject,
            actor=None,
            data=data,
        )
        with self._lock:
            self.submitted.append(event)
            self._futures.append(future)
        return event

    def _run(self) -> None:
        interval_s = 1.0 / self._rate_per_s
        next_at = time.monotonic()
        n = len(self.submitted)
        while not self._stopping.is_set():
            self._submit(n)
            n += 1
            next_at += interval_s
            delay_s = next_at - time.monotonic()
            if delay_s > 0:
                self._stopping.wait(delay_s)

    def stop(self, *, ack_timeout_s: float = 150.0) -> None:
        """Stop publishing, wait for every outcome, and sort events into accepted/refused."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(30)
        self._publisher.flush(ack_timeout_s)
        self._publisher.close(10)
        for event, future in zip(self.submitted, self._futures, strict=True):
            try:
                future.result(timeout=1)
            except (PublishFailed, concurrent.futures.TimeoutError):
                self.refused.append(event)
            else:
                self.accepted.append(event)
