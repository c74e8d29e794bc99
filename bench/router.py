"""Events per second of one router process: 1 KiB events, 10 subscriptions.

`--events` events (task.created / task.assigned / meeting.ended, two tenants, ~1 KiB each)
are produced to a fresh prefix first; then one Router runs in this process and routes them
to 10 subscriptions of a realistic mix (wildcards, nouns, exact types, filters, a paused one).
The rate is measured from the first committed batch to the last, so start-up and the group
join are left out.

    .venv/bin/python -m bench.router [--events 50000] [--batch-max-events 1000]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from bench.cleanup import drop_prefix
from core.filters import EMPTY_FILTER, FilterValue, parse_filter
from core.json_value import JsonValue
from core.records import DomainEvent, Ref, Subscription, SubscriptionStatus
from hookline.app.localstack.stack import local_settings, start_stack
from hookline.runtime.codecs import open_codec
from hookline.runtime.kafka import producer_config
from hookline.runtime.producing import Acks
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from hookline.runtime.topics import ensure_topics
from router.service import DEFAULT_BATCH_MAX_EVENTS, Router
from schemas.records_avro import RecordCodec

BENCH_DIR: Final = Path(__file__).resolve().parent.parent / ".hookline" / "bench"
EVENT_BYTES: Final = 1024


def bench_settings() -> Settings:
    """A fresh topic prefix on the bench's local stack (or on HOOKLINE_KAFKA_BOOTSTRAP)."""
    base = Settings.load().with_changes(topic_prefix=f"bench{uuid.uuid4().hex[:8]}")
    if base.kafka_bootstrap:
        return base.with_changes(replication_factor=1, min_insync_replicas=1)
    return local_settings(base, start_stack(BENCH_DIR / "local", cache_dir=base.cache_dir))


def _subscription(
    n: int,
    *types: str,
    tenant: str = "acme",
    status: SubscriptionStatus = "active",
    filter: dict[str, FilterValue] | None = None,
) -> Subscription:
    now = datetime.now(UTC)
    return Subscription(
        id=f"bench-sub-{n}",
        tenant=tenant,
        url=f"https://hooks.example.com/{n}",
        event_types=types,
        filter=EMPTY_FILTER if filter is None else parse_filter(filter),
        status=status,
        created_at=now,
        updated_at=now,
    )


SUBSCRIPTIONS: Final = (
    _subscription(1, "*"),  # an audit log of everything
    _subscription(2, "task.*"),
    _subscription(3, "task.created"),
    _subscription(4, "task.assigned"),
    _subscription(5, "meeting.ended"),
    _subscription(6, "task.*", filter={"project_id": "p-1"}),
    _subscription(7, "task.created", filter={"assignee_id": None}),
    _subscription(8, "*", tenant="globex"),
    _subscription(9, "task.*", "meeting.ended", tenant="globex"),
    _subscription(10, "task.created", status="paused"),
)


def _event(n: int, padding: str) -> DomainEvent:
    tenant = "globex" if n % 5 == 0 else "acme"
    data: dict[str, JsonValue]
    match n % 10:
        case 0 | 1 | 2 | 3 | 4:
            event_type = "task.created"
            data = {"id": f"t-{n}", "title": padding, "project_id": f"p-{n % 3}"}
            data["assignee_id"] = None if n % 2 else "u-1"
        case 5 | 6 | 7:
            event_type = "task.assigned"
            data = {"id": f"t-{n}", "title": padding, "assignee_id": "u-2"}
        case _:
            event_type = "meeting.ended"
            data = {
                "id": f"m-{n}",
                "title": padding,
                "ended_at": "2025-03-04T12:00:00Z",
                "attendee_ids": ["u-1", "u-2", "u-3"],
            }
    return DomainEvent(
        id=str(uuid.uuid4()),
        type=event_type,
        tenant=tenant,
        occurred_at=datetime.now(UTC),
        subject=Ref(event_type.split(".", maxsplit=1)[0], str(data["id"])),
        actor=Ref("user", "u-1"),
        data=data,
    )


def _produce(settings: Settings, codec: RecordCodec, count: int) -> int:
    """Produce `count` ~1 KiB events; returns the bytes written."""
    overhead = len(codec.encode_event(_event(0, "")))
    padding = "x" * (EVENT_BYTES - overhead)
    producer = Producer(producer_config(settings, client_id="bench-events", linger_ms=20))
    acks = Acks(producer, timeout_s=120)
    written = 0
    for n in range(count):
        event = _event(n, padding)
        value = codec.encode_event(event)
        written += len(value)
        acks.produce(settings.topic("events"), key=event.subject.id, value=value)
    acks.wait()
    return written


def _measure(router: Router, registry: CollectorRegistry, count: int) -> tuple[float, float]:
    """(events, seconds) from the first committed batch to the last."""

    def routed() -> float:
        return registry.get_sample_value("hookline_router_events_total") or 0.0

    while routed() == 0:
        time.sleep(0.001)
    first_at, first = time.perf_counter(), routed()
    deadline = first_at + 600
    while routed() < count:
        assert time.perf_counter() < deadline, f"routed {routed()} of {count}"
        time.sleep(0.001)
    return count - first, time.perf_counter() - first_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-max-events", type=int, default=DEFAULT_BATCH_MAX_EVENTS)
    args = parser.parse_args()

    settings = bench_settings()
    ensure_topics(settings)
    runtime = open_codec(settings, client_id="bench-router")
    subscriptions = SubscriptionLog(settings, runtime.codec, client_id="bench-subs")
    for sub in SUBSCRIPTIONS:
        subscriptions.put(sub)
    subscriptions.close()
    written = _produce(settings, runtime.codec, args.events)

    registry = CollectorRegistry()
    router = Router(settings, registry, batch_max_events=args.batch_max_events)
    stopping = threading.Event()
    thread = threading.Thread(target=router.run, args=(stopping,), name="bench-router")
    thread.start()
    try:
        events, seconds = _measure(router, registry, args.events)
    finally:
        stopping.set()
        thread.join()
        runtime.close()
        drop_prefix(settings)
    commands = registry.get_sample_value("hookline_router_commands_total") or 0.0
    per_event = commands / args.events
    rows = [
        ("events", f"{args.events}"),
        ("event size (bytes, avg)", f"{written / args.events:.0f}"),
        ("subscriptions", f"{len(SUBSCRIPTIONS)} (1 paused)"),
        ("commands", f"{commands:.0f} ({per_event:.2f} per event)"),
        ("partitions", f"{settings.partitions}"),
        ("batch (events per transaction, max)", f"{args.batch_max_events}"),
        ("measured", f"{events:.0f} events in {seconds:.2f} s"),
        ("events/s", f"{events / seconds:,.0f}"),
        ("commands/s", f"{events * per_event / seconds:,.0f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"router benchmark (one process, CPU count {os.cpu_count()})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(
        "command: .venv/bin/python -m bench.router "
        + " ".join(f"--events {args.events} --batch-max-events {args.batch_max_events}".split())
    )


if __name__ == "__main__":
    main()
