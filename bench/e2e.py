"""End-to-end benchmark: events in, signed webhooks out, on the local stack (`hookline bench`).

`--subscriptions` subscriptions (default 100, each its own tenant, so every event goes to
exactly one) point at a receiver in its own process. `hookline router` and `--deliverers`
`hookline deliverer` processes run the pipeline. Per scenario, after a warm-up of one event
per subscription, events are published at `--rate` events/s (open model; 0 skips this
phase), then `--events` more as fast as possible. Reported: deliveries/s, first-attempt
latency (occurred_at -> arrival) p50/p95/p99/max, router events/s, and the replay scan's
events/s (a real replay job over the scenario's events). In the same run a bare aiohttp
client loop POSTs the same bodies to the same receiver: the ceiling, and ours/ceiling.

Scenarios: `healthy`; `hang` (10 % of endpoints sleep 3 s, past the delivery timeout, which
is 2 s in this scenario only); `fail` (10 % answer 500);
`two-deliverers` (healthy, two deliverer processes).

    .venv/bin/python -m bench.e2e [--scenario all] [--events 10000] [--rate 1000] [--json]
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import orjson
import psycopg
from confluent_kafka import ConsumerGroupState, Producer
from confluent_kafka.admin import AdminClient

from api.job_runner import JobRunner
from bench.cli import SCENARIO_NAMES, add_arguments
from bench.deliverer import MAX_CONNECTIONS, _bare_loop, _commands
from bench.e2e_pipeline import (
    CounterWatch,
    Process,
    get_json,
    metric,
    start_receiver,
    start_service,
)
from bench.e2e_report import Report, ScenarioResult
from bench.e2e_stats import PhaseStats, Published, Row, phase_stats
from core.records import Job, StoredSecret, Subscription, utc_ms
from core.secretbox import SecretBox
from core.signing import generate_secret
from deliverer.kafka_io import deliveries_group
from deliverer.service import new_event_loop
from hookline.codecs import open_codec
from hookline.kafka import admin_config, producer_config
from hookline.localstack.stack import local_settings, start_stack
from hookline.settings import Secret, Settings
from hookline.subscription_log import SubscriptionLog
from hookline.subscription_table import SubscriptionTable
from hookline.topics import ensure_topics
from producers.publisher import build_event, encode_event
from schemas.records_avro import RecordCodec

BENCH_DIR: Final = Path(__file__).resolve().parent.parent / ".hookline" / "bench"
BAD_FRACTION: Final = 0.10
DELIVERY_TIMEOUT_S: Final = 2.0
HANG_S: Final = 3.0  # the hanging endpoints answer after the deadline has passed
WAIT_S: Final = 180.0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    bad_kind: str  # path kind of the first 10 % of subscriptions: ok, hang or fail
    deliverers: int
    delivery_timeout_s: float | None = None  # None: the setting's (default 15 s)


SCENARIOS: Final = {
    "healthy": Scenario("healthy", "ok", 1),
    "hang": Scenario("hang", "hang", 1, DELIVERY_TIMEOUT_S),
    "fail": Scenario("fail", "fail", 1),
    "two-deliverers": Scenario("two-deliverers", "ok", 2),
}
assert tuple(SCENARIOS) == SCENARIO_NAMES


def infrastructure(base: Settings) -> Settings:
    """The local stack under .hookline/bench, unless a Kafka bootstrap is configured."""
    if base.kafka_bootstrap:
        return base
    return local_settings(base, start_stack(BENCH_DIR / "local"))


def scenario_settings(infra: Settings, scenario: Scenario) -> Settings:
    return infra.with_changes(
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
        secret_key=Secret(base64.b64encode(secrets.token_bytes(32)).decode()),
        allowed_target_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        delivery_timeout_s=scenario.delivery_timeout_s or infra.delivery_timeout_s,
    )


def write_subscriptions(
    settings: Settings, codec: RecordCodec, url: str, count: int, scenario: Scenario
) -> list[Subscription]:
    assert settings.secret_key is not None
    box = SecretBox.from_base64(settings.secret_key.value)
    log = SubscriptionLog(settings, codec, client_id="bench-e2e-subscriptions")
    now = utc_ms(datetime.now(UTC))
    bad = bad_count(count)
    subs = []
    try:
        for i in range(count):
            sub_id = str(uuid.uuid4())
            kind = scenario.bad_kind if i < bad else "ok"
            sub = Subscription(
                id=sub_id,
                tenant=f"t{i}",
                url=f"{url}/{kind}/{i}",
                event_types=("*",),
                filter={},
                description="bench",
                headers={},
                rate_limit=None,
                ordered=False,
                status="active",
                created_at=now,
                updated_at=now,
                version=1,
                secrets=(StoredSecret(box.seal(generate_secret(), subscription_id=sub_id), None),),
            )
            log.put(sub)
            subs.append(sub)
    finally:
        log.close()
    return subs


def bad_count(subscriptions: int) -> int:
    return round(subscriptions * BAD_FRACTION)


class EventSource:
    """Publishes task.created events, round-robin over the subscriptions' tenants."""

    def __init__(self, settings: Settings, codec: RecordCodec, subscriptions: int) -> None:
        self._codec = codec
        self._subscriptions = subscriptions
        self._topic = settings.topic("events")
        self._producer = Producer(
            producer_config(settings, client_id="bench-e2e-events", linger_ms=5)
        )
        self._n = 0

    def publish(self, count: int, rate: float | None) -> Published:
        """`count` events, paced at `rate` events/s (open model) or as fast as possible."""
        ids, subs = [], []
        started_s, started = time.time(), time.perf_counter()
        for k in range(count):
            if rate:
                ahead_s = started + k / rate - time.perf_counter()
                if ahead_s > 0:
                    time.sleep(ahead_s)
            n, self._n = self._n, self._n + 1
            sub = n % self._subscriptions
            event = build_event(
                "task.created",
                subject=("task", f"t{n}"),
                data={"id": f"t{n}", "title": "bench", "project_id": "p1", "assignee_id": None},
                tenant=f"t{sub}",
            )
            value = encode_event(self._codec, event)
            while True:
                try:
                    self._producer.produce(self._topic, key=event.subject.id, value=value)
                    break
                except BufferError:
                    self._producer.poll(0.01)
            self._producer.poll(0)
            ids.append(event.id)
            subs.append(sub)
        if self._producer.flush(60) != 0:
            raise RuntimeError("events not acknowledged in 60 s")
        return Published(ids, subs, started_s, time.perf_counter() - started)

    def close(self) -> None:
        self._producer.flush(10)


def wait_first(
    url: str, kind: str, target: int, timeout_s: float, processes: Sequence[Process] = ()
) -> int:
    """Wait until the receiver has `target` first arrivals of `kind` (or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for process in processes:
            process.check()
        progress = get_json(f"{url}/_bench/progress")
        assert isinstance(progress, dict)
        seen = (
            int(progress["first"].get(kind, 0)) if kind != "*" else sum(progress["first"].values())
        )
        if seen >= target or time.monotonic() > deadline:
            return seen
        time.sleep(0.02)


def wait_settled(settings: Settings, deliverers: int, timeout_s: float = 60.0) -> None:
    """Wait until the deliverers' group is stable with every deliverer owning partitions.

    The warm-up's deliveries can all arrive while a cooperative rebalance still has a round
    to go; a phase that starts then measures partitions changing hands, not steady state."""
    group = deliveries_group(settings)
    topic = settings.topic("deliveries")
    admin = AdminClient(admin_config(settings))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
        owned = [
            {tp.partition for tp in member.assignment.topic_partitions if tp.topic == topic}
            for member in description.members
        ]
        if (
            description.state == ConsumerGroupState.STABLE
            and len(owned) == deliverers
            and all(owned)
            and len(set().union(*owned)) == settings.partitions
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the deliverers' group did not settle in {timeout_s:g} s")


def dump(url: str) -> dict[str, Row]:
    rows = get_json(f"{url}/_bench/dump")
    assert isinstance(rows, list)
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def run_scenario(
    infra: Settings, scenario: Scenario, args: argparse.Namespace, url: str, ok_before: int
) -> tuple[ScenarioResult, list[Subscription], int]:
    settings = scenario_settings(infra, scenario)
    ensure_topics(settings)
    runtime = open_codec(settings, client_id="bench-e2e")
    count = args.subscriptions
    bad = bad_count(count)
    subs = write_subscriptions(settings, runtime.codec, url, count, scenario)
    since = utc_ms(datetime.now(UTC))
    router, router_port = start_service("router", settings, "router", profile_dir=args.profile)
    processes: list[Process] = [router]
    for i in range(scenario.deliverers):
        processes.append(
            start_service("deliverer", settings, f"deliverer-{i}", profile_dir=args.profile)[0]
        )
    source = EventSource(settings, runtime.codec, count)
    phases: dict[str, PhaseStats] = {}
    try:
        published = source.publish(count, None)  # warm-up: every group joined, every lane open
        ok_of = sum(1 for s in published.subs if s >= bad or scenario.bad_kind == "ok")
        ok_before = wait_first(url, "ok", ok_before + ok_of, WAIT_S, processes)
        wait_settled(settings, scenario.deliverers)
        runs: list[tuple[str, float | None]] = [("max", None)]
        if args.rate > 0:
            runs.insert(0, (f"{args.rate:g}/s", args.rate))
        for phase, rate in runs:
            watch = CounterWatch(router_port, "hookline_router_events_total")
            routed_before = metric(router_port, "hookline_router_events_total")
            watch.start()
            published = source.publish(args.events, rate)
            ok_of = sum(1 for s in published.subs if s >= bad or scenario.bad_kind == "ok")
            ok_before = wait_first(url, "ok", ok_before + ok_of, WAIT_S, processes)
            watch.stop()
            phases[phase] = phase_stats(
                dump(url),
                published,
                bad_count=bad,
                router_events_per_s=watch.rate(routed_before, routed_before + args.events),
                load_average=loadavg(),
            )
    finally:
        codes = [p.stop() for p in processes]
        source.close()
    try:
        scan = replay_scan(settings, runtime.codec, subs[-1], since)
    finally:
        runtime.close()
    result = ScenarioResult(scenario.name, scenario.deliverers, phases, scan, codes)
    return result, subs, ok_before


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def replay_scan(
    settings: Settings, codec: RecordCodec, sub: Subscription, since: datetime
) -> float:
    """Events/s of a real replay job (api.job_runner) over the scenario's events."""
    if settings.database_url is None:
        return float("nan")
    table = SubscriptionTable(settings, codec, client_id="bench-e2e-replay-subs")
    producer = Producer(producer_config(settings, client_id="bench-e2e-replay", linger_ms=20))
    conn: psycopg.Connection[object] = psycopg.connect(settings.database_url.value, autocommit=True)
    try:
        table.start()
        table.wait_ready(60)
        runner = JobRunner(settings, codec, producer, table, conn)
        now = utc_ms(datetime.now(UTC))
        job = Job(
            id=str(uuid.uuid4()),
            kind="replay",
            tenant=sub.tenant,
            subscription_id=sub.id,
            delivery_id=None,
            since=since,
            until=None,
            event_types=(),
            status="running",
            scanned=0,
            emitted=0,
            error=None,
            created_at=now,
            updated_at=now,
        )
        started = time.perf_counter()
        done = runner.run(job, threading.Event())
        elapsed = time.perf_counter() - started
        if done.status != "done":
            raise RuntimeError(f"replay job {done.status}: {done.error}")
        return round(done.scanned / elapsed, 1)
    finally:
        conn.close()
        producer.flush(10)
        table.close()


def ceiling(url: str, subs: list[Subscription], count: int, lane_concurrency: int) -> float:
    """bench.deliverer's bare aiohttp client loop against the same receiver."""
    commands = _commands(subs, count)
    concurrency = min(len(subs) * lane_concurrency, MAX_CONNECTIONS)
    loop = new_event_loop()
    try:
        return round(loop.run_until_complete(_bare_loop(url, commands, concurrency)), 1)
    finally:
        loop.close()


def run(args: argparse.Namespace, base: Settings, command: str) -> int:
    names = args.scenario or ["all"]
    chosen = list(SCENARIOS) if "all" in names else list(dict.fromkeys(names))
    infra = infrastructure(base)
    receiver, url = start_receiver(HANG_S)
    report = Report(command=command, events=args.events)
    try:
        ok_before = 0
        for name in chosen:
            result, subs, ok_before = run_scenario(infra, SCENARIOS[name], args, url, ok_before)
            report.scenarios.append(result)
            if report.ceiling_per_s is None:
                report.ceiling_per_s = ceiling(url, subs, args.events, infra.lane_concurrency)
                report.ceiling_load_average = loadavg()
                ok_before = wait_first(url, "ok", 0, 0)
            report.print_scenario(result)
    finally:
        receiver.stop()
    report.print_summary()
    if args.json:
        print(orjson.dumps(report.as_json()).decode())
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    command = " ".join([".venv/bin/python -m bench.e2e", *sys.argv[1:]])
    sys.exit(run(parser.parse_args(), Settings.load(), command))


if __name__ == "__main__":
    main()
