"""Two `hookline router` and two `hookline deliverer` processes against one broker: the work
splits between them, and when one of each stops (SIGTERM) midway, every expected (event,
subscription) webhook still arrives exactly once and every delivery command is committed
exactly once."""

from __future__ import annotations

import ipaddress
import os
import threading
import uuid
import zlib
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from core.ids import delivery_id
from core.records import StoredSecret, Subscription, utc_ms
from core.secretbox import SecretBox
from core.signing import generate_secret
from hookline.app.receiver import Receiver
from hookline.runtime.codecs import CodecRuntime, open_codec
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from hookline.runtime.topics import ensure_topics
from producers.publisher import Publisher
from tests.e2e.conftest import ServiceProcess, group_assignment, receiver_in_thread
from tests.factories import subscription
from tests.integration.router.conftest import CommittedReader
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

EVENTS = 2000
PROJECTS = 6
SUBSCRIPTIONS = 12  # subscription i takes task.created of project p-{i % PROJECTS}: 2 per event
CHUNK = 50
CHUNK_INTERVAL_S = 0.1  # ~500 events/s, steadily
ROUTED = "hookline_router_events_total"
DELIVERED = 'hookline_deliverer_attempts_total{outcome="delivered"}'


def _env(settings: Settings) -> dict[str, str]:
    assert settings.kafka_bootstrap is not None
    assert settings.secret_key is not None
    return {
        **os.environ,
        "HOOKLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HOOKLINE_SECRET_KEY": settings.secret_key.value,
        "HOOKLINE_TOPIC_PREFIX": settings.topic_prefix,
        "HOOKLINE_PARTITIONS": str(settings.partitions),
        "HOOKLINE_REPLICATION_FACTOR": "1",
        "HOOKLINE_MIN_INSYNC_REPLICAS": "1",
        "HOOKLINE_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8",
        "HOOKLINE_DELIVERY_TIMEOUT_S": "5",
        "HOOKLINE_RETRY_DELAYS_S": "0.5,0.5",
    }


def _subscription_ids(partitions: int) -> list[str]:
    """Ids spread evenly over the deliveries partitions (librdkafka's default partitioner is
    CRC32 of the key), so both deliverers get commands whatever the assignment."""
    ids: list[str] = []
    per_partition = Counter[int]()
    while len(ids) < SUBSCRIPTIONS:
        candidate = str(uuid.uuid4())
        partition = zlib.crc32(candidate.encode()) % partitions
        if per_partition[partition] < -(-SUBSCRIPTIONS // partitions):
            per_partition[partition] += 1
            ids.append(candidate)
    return ids


def _write_subscriptions(
    settings: Settings, runtime: CodecRuntime, receiver: Receiver
) -> list[Subscription]:
    assert settings.secret_key is not None
    box = SecretBox.from_base64(settings.secret_key.value)
    now = utc_ms(datetime.now(UTC))
    log = SubscriptionLog(settings, runtime.codec, client_id="e2e-scale-out-subs")
    subs: list[Subscription] = []
    try:
        for n, sub_id in enumerate(_subscription_ids(settings.partitions)):
            secret = generate_secret()
            receiver.secrets.append(secret)
            sub = subscription(
                sub_id,
                "task.created",
                at=now,
                tenant="default",
                url=receiver.url(f"/s{n}"),
                filter={"project_id": f"p-{n % PROJECTS}"},
                description="scale-out test",
                secrets=(StoredSecret(box.seal(secret, subscription_id=sub_id), None),),
            )
            log.put(sub)
            subs.append(sub)
    finally:
        log.close()
    return subs


class _SteadyPublisher:
    """Publishes EVENTS task.created events in chunks from a thread; halfway it waits for
    `go_on` (set once both instances of each service have done some work)."""

    def __init__(self, settings: Settings, runtime: CodecRuntime) -> None:
        self._publisher = Publisher(settings, client_id="e2e-scale-out", codec=runtime.codec)
        self.go_on = threading.Event()
        self.published: list[tuple[str, str]] = []  # (event id, project)
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            for start in range(0, EVENTS, CHUNK):
                if start == EVENTS // 2 and not self.go_on.wait(60):
                    return
                if self._stop.wait(CHUNK_INTERVAL_S):
                    return
                chunk = []
                for n in range(start, start + CHUNK):
                    project = f"p-{n % PROJECTS}"
                    data = {"id": f"t-{n}", "title": "scale", "project_id": project}
                    future = self._publisher.submit(
                        "task.created",
                        subject=("task", f"t-{n}"),
                        data=data | {"assignee_id": None},
                    )
                    chunk.append((future, project))
                self.published += [(future.result(30), project) for future, project in chunk]
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the test's thread
            self.failure = exc

    def close(self) -> None:
        self._stop.set()
        self.go_on.set()
        self._thread.join(60)
        self._publisher.close()


def test_two_routers_and_two_deliverers_split_the_work_and_survive_a_graceful_stop(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.with_changes(allowed_target_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    ensure_topics(settings)
    runtime = open_codec(settings, client_id="e2e-scale-out")
    env = _env(settings)
    services: list[ServiceProcess] = []
    publisher = _SteadyPublisher(settings, runtime)
    reader = CommittedReader(settings, settings.topic("deliveries"))
    try:
        with receiver_in_thread(Receiver()) as receiver:
            subs = _write_subscriptions(settings, runtime, receiver)
            routers = [ServiceProcess("router", env, tmp_path / f"router-{n}.log") for n in (1, 2)]
            deliverers = [
                ServiceProcess("deliverer", env, tmp_path / f"deliverer-{n}.log") for n in (1, 2)
            ]
            services += routers + deliverers

            def both_assigned(group: str) -> bool:
                for service in services:
                    assert service.process.poll() is None, service.output()
                members = group_assignment(settings, f"{settings.topic_prefix}.{group}")
                return len(members) == 2 and all(members.values())

            # both in their groups before the first event: a deliverer joining while the
            # other has deliveries in flight makes it give up partitions mid-delivery, and
            # the new owner sends those again (at least once; see the report)
            for group in ("router", "deliverer"):
                eventually(partial(both_assigned, group), f"two {group}s", timeout_s=60)
            publisher.start()

            def all_working() -> bool:
                assert publisher.failure is None, publisher.failure
                for service in services:
                    assert service.process.poll() is None, service.output()
                return all(r.metric(ROUTED) > 0 for r in routers) and all(
                    d.metric(DELIVERED) > 0 for d in deliverers
                )

            def work() -> dict[str, float]:
                return {r.name: r.metric(ROUTED) for r in routers} | {
                    d.name: d.metric(DELIVERED) for d in deliverers
                }

            eventually(
                all_working,
                "every instance doing some of the work",
                timeout_s=60,
                detail=lambda: (work(), len(publisher.published), len(receiver.received)),
            )
            publisher.go_on.set()
            eventually(
                lambda: len(publisher.published) >= EVENTS // 2 + 2 * CHUNK,
                "publishing past the middle",
                timeout_s=30,
            )
            # midway: one of each stops gracefully while events keep coming
            stopped_router, stopped_deliverer = routers[1], deliverers[1]
            stopped_router.scrape()  # their last figures, kept for the report below
            stopped_deliverer.scrape()
            stopped_router.stop()
            stopped_deliverer.stop()
            for service in (stopped_router, stopped_deliverer):
                assert service.exit_code() == 0, service.output()

            expected: set[tuple[str, str]] = set()  # (webhook-id, path)

            def everything_arrived() -> bool:
                assert publisher.failure is None, publisher.failure
                if len(publisher.published) < EVENTS:
                    return False
                expected.update(
                    (event_id, f"/s{n}")
                    for event_id, project in publisher.published
                    for n in range(SUBSCRIPTIONS)
                    if f"p-{n % PROJECTS}" == project
                )
                return {(r.webhook_id, r.path) for r in receiver.received} >= expected

            eventually(everything_arrived, "every webhook arriving", timeout_s=60)
            shares = {
                "routers": [r.metric(ROUTED) for r in routers],
                "deliverers": [d.metric(DELIVERED) for d in deliverers],
            }
            for service in (routers[0], deliverers[0]):
                service.stop()
            for service in (routers[0], deliverers[0]):
                assert service.exit_code() == 0, service.output()
            received = list(receiver.received)
        reader.drain()
        committed = Counter(c.delivery_id for c in reader.commands(runtime))
    finally:
        publisher.close()
        reader.close()
        for service in services:
            service.close()
        runtime.close()

    pairs = Counter((r.webhook_id, r.path) for r in received)
    doubled = {pair: n for pair, n in pairs.items() if n > 1}
    print(  # the work split, for the record
        f"routed {shares['routers']}, delivered {shares['deliverers']} "
        "(the second of each as scraped just before its SIGTERM); "
        f"{len(pairs)} webhooks, {sum(doubled.values()) - len(doubled)} duplicates"
    )
    assert len(expected) == EVENTS * SUBSCRIPTIONS // PROJECTS
    assert set(pairs) == expected, "nothing lost, nothing unexpected"
    assert not doubled, f"{len(doubled)} webhooks arrived more than once"
    assert all(r.verified for r in received)
    sub_at = {f"/s{n}": sub.id for n, sub in enumerate(subs)}
    wanted_ids = {delivery_id(event_id, sub_at[path]) for event_id, path in expected}
    assert max(committed.values()) == 1, "a delivery command committed twice"
    assert set(committed) == wanted_ids
