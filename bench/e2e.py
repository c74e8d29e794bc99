"""End-to-end benchmark: events in, signed webhooks out, on the local stack (`hookline bench`).

`--subscriptions` subscriptions (default 100, each its own tenant, so every event goes to
exactly one) point at a receiver in its own process. `hookline router` and `--deliverers`
`hookline deliverer` processes run the pipeline. Per scenario, after a warm-up of one event
per subscription, `--events` events are published at each `--rate` events/s (open model; 0
skips these phases), then `--events` more as fast as possible. Reported: deliveries/s,
first-attempt latency (occurred_at -> arrival) p50/p95/p99/max, router events/s, the
services' per-hop histograms (bench.e2e_hops), and the replay scan's events/s (a real replay
job over the scenario's events). In the same run a bare aiohttp client loop POSTs the same
bodies to the same receiver at each `--ceiling-concurrency`: the best is the ceiling, and
ours/ceiling.

Scenarios: `healthy`; `hang` (10 % of endpoints sleep 3 s, past the delivery timeout, which
is 2 s in this scenario only); `fail` (10 % answer 500);
`two-deliverers` (healthy, two deliverer processes); `hostile` (one ordered subscription whose
endpoint never answers, one answering 503 `Retry-After: 290`, one receiving a 20,000-event
burst before the first phase; the other 97 against the same 97 of `healthy`: bench.e2e_hostile);
`api` (healthy, but the events go through `POST /v1/events`, sent by `--clients` concurrent
HTTP clients, to `hookline api`, `router`, `deliverer`, `projector` and `replayer` processes
with every setting `hookline up` would give them: bench.e2e_ingest).

    .venv/bin/python -m bench.e2e [--scenario all] [--events 10000] [--rate 1000] [--json]
"""

from __future__ import annotations

import argparse
import base64
import functools
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
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from api.replayer.bootstrap import bootstrap as replayer_bootstrap
from api.replayer.job_runner import JobRunner
from bench.cleanup import drop_prefix
from bench.deliverer import _bare_loop, _commands
from bench.e2e_events import EventSource
from bench.e2e_hops import phase_hops, scrape
from bench.e2e_hostile import BURST_EVENTS, HOSTILE_KINDS, ORDERED_KINDS, BurstStats, Others
from bench.e2e_pipeline import (
    WAIT_S,
    CounterWatch,
    Pipeline,
    api_source,
    dump,
    metric,
    start_pipeline,
    start_receiver,
    wait_first,
)
from bench.e2e_report import Ceiling, Report, ScenarioResult
from bench.e2e_stats import PhaseStats, Published, p99_by_second, phase_stats
from bench.options import CEILING_CONCURRENCIES, DEFAULT_RATE, SCENARIO_NAMES, add_arguments
from core.records import Job, StoredSecret, Subscription, utc_ms
from core.secretbox import SecretBox
from core.signing import generate_secret
from deliverer.service import new_event_loop
from hookline.app.localstack.stack import local_settings, start_stack
from hookline.runtime.codecs import open_codec
from hookline.runtime.kafka import admin_config
from hookline.runtime.settings import Secret, Settings
from hookline.runtime.subscription_log import SubscriptionLog
from hookline.runtime.topics import ensure_topics
from schemas.records_avro import RecordCodec

BENCH_DIR: Final = Path(__file__).resolve().parent.parent / ".hookline" / "bench"
BAD_FRACTION: Final = 0.10
DELIVERY_TIMEOUT_S: Final = 2.0
HANG_S: Final = 3.0  # the hanging endpoints answer after the deadline has passed
ROUTED: Final = "hookline_router_events_total"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    bad_kind: str  # path kind of the first 10 % of subscriptions: ok, hang or fail
    deliverers: int
    delivery_timeout_s: float | None = None  # None: the setting's (default 15 s)
    leading: tuple[str, ...] = ()  # path kinds of the first subscriptions, instead of bad_kind's
    burst: int = 0  # events to the `burst` subscription before the first phase
    through_api: bool = False  # events sent through `POST /v1/events` to `hookline api`


SCENARIOS: Final = {
    "healthy": Scenario("healthy", "ok", 1),
    "hang": Scenario("hang", "hang", 1, DELIVERY_TIMEOUT_S),
    "fail": Scenario("fail", "fail", 1),
    "two-deliverers": Scenario("two-deliverers", "ok", 2),
    "hostile": Scenario("hostile", "ok", 1, leading=HOSTILE_KINDS, burst=BURST_EVENTS),
    "api": Scenario("api", "ok", 1, through_api=True),
}
assert tuple(SCENARIOS) == SCENARIO_NAMES


def infrastructure(base: Settings) -> Settings:
    """The local stack under .hookline/bench, unless a Kafka bootstrap is configured."""
    if base.kafka_bootstrap:
        return base
    return local_settings(base, start_stack(BENCH_DIR / "local", cache_dir=base.cache_dir))


def scenario_settings(infra: Settings, scenario: Scenario) -> Settings:
    settings = infra.with_changes(
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
        secret_key=Secret(base64.b64encode(secrets.token_bytes(32)).decode()),
        allowed_target_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        delivery_timeout_s=scenario.delivery_timeout_s or infra.delivery_timeout_s,
    )
    if not scenario.through_api:
        return settings
    return settings.with_changes(
        admin_token=Secret("bench-admin-" + secrets.token_urlsafe(16)),
        # the pipeline's latency is measured, not the quotas: every tenant may publish at will
        publish_rate_per_s=1e9,
        publish_burst=1_000_000,
    )


def paced_rates(rates: Sequence[float] | None) -> list[float]:
    """The open-model phases' rates, in the order given, once each (none for 0)."""
    return [r for r in dict.fromkeys(rates or [DEFAULT_RATE]) if r > 0]


def path_kinds(scenario: Scenario, count: int) -> list[str]:
    """The receiver path kind of each subscription."""
    if scenario.leading:
        return [*scenario.leading, *["ok"] * (count - len(scenario.leading))]
    bad = bad_count(count)
    return [scenario.bad_kind] * bad + ["ok"] * (count - bad)


def write_subscriptions(
    settings: Settings, codec: RecordCodec, url: str, kinds: Sequence[str]
) -> list[Subscription]:
    assert settings.secret_key is not None
    box = SecretBox.from_base64(settings.secret_key.value)
    log = SubscriptionLog(settings, codec, client_id="bench-e2e-subscriptions")
    now = utc_ms(datetime.now(UTC))
    subs = []
    try:
        for i, kind in enumerate(kinds):
            sub_id = str(uuid.uuid4())
            sub = Subscription(
                id=sub_id,
                tenant=f"t{i}",
                url=f"{url}/{kind}/{i}",
                event_types=("*",),
                description="bench",
                ordered=kind in ORDERED_KINDS,
                created_at=now,
                updated_at=now,
                secrets=(StoredSecret(box.seal(generate_secret(), subscription_id=sub_id), None),),
            )
            log.put(sub)
            subs.append(sub)
    finally:
        log.close()
    return subs


def bad_count(subscriptions: int) -> int:
    return round(subscriptions * BAD_FRACTION)


def wait_settled(settings: Settings, deliverers: int, timeout_s: float = 60.0) -> None:
    """Wait until the deliverers' group is stable with every deliverer owning partitions.

    The warm-up's deliveries can all arrive while a cooperative rebalance still has a round
    to go; a phase that starts then measures partitions changing hands, not steady state."""
    group = settings.group("deliverer")
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


def run_scenario(
    infra: Settings, scenario: Scenario, args: argparse.Namespace, url: str, ok_before: int
) -> tuple[ScenarioResult, list[Subscription], int]:
    settings = scenario_settings(infra, scenario)
    ensure_topics(settings)
    runtime = open_codec(settings, client_id="bench-e2e")
    kinds = path_kinds(scenario, args.subscriptions)
    bad = len(scenario.leading) or bad_count(args.subscriptions)
    subs = write_subscriptions(settings, runtime.codec, url, kinds)
    since = utc_ms(datetime.now(UTC))
    pipeline = start_pipeline(
        settings,
        deliverers=scenario.deliverers,
        through_api=scenario.through_api,
        profile_dir=args.profile,
        url=url,
        kinds=kinds,
        ok_before=ok_before,
    )
    source = (
        api_source(settings, pipeline, args.subscriptions, args.clients)
        if scenario.through_api
        else EventSource(settings, runtime.codec, args.subscriptions)
    )
    phases: dict[str, PhaseStats] = {}
    others: dict[str, Others] = {}
    burst: BurstStats | None = None
    try:
        pipeline.burst_expected = wait_first(url, "burst", 0, 0)
        # warm-up: every group joined, every lane open
        pipeline.wait(source.publish(args.subscriptions, None))
        wait_settled(settings, scenario.deliverers)
        runs: list[tuple[str, float | None]] = [
            *((f"{rate:g}/s", rate) for rate in paced_rates(args.rate)),
            ("max", None),
        ]
        for phase, rate in runs:
            routed = None
            if scenario.burst and not phases:  # the burst goes before the first phase
                assert isinstance(source, EventSource), "bursts are published to Kafka"
                routed = route_burst(source, scenario, pipeline)
            watch = CounterWatch(pipeline.router_port, ROUTED)
            routed_before = metric(pipeline.router_port, ROUTED)
            hops_before = scrape(pipeline.metrics_ports)
            watch.start()
            published = source.publish(args.events, rate)
            pipeline.wait(published)
            watch.stop()
            hops = phase_hops(hops_before, scrape(pipeline.metrics_ports))
            rows = dump(url)
            stats = functools.partial(
                phase_stats,
                rows,
                published,
                router_events_per_s=watch.rate(routed_before, routed_before + len(published.ids)),
                load_average=loadavg(),
                hops=hops,
            )
            phases[phase] = stats(bad_count=bad)
            first = len(HOSTILE_KINDS)
            timeline = p99_by_second(rows, published, bad_count=first)
            others[phase] = Others(stats(bad_count=first), timeline)
            if routed is not None:
                # drained before the next phase, which measures the others beside the ordered
                # hanging and the throttled endpoint only
                wait_first(url, "burst", pipeline.burst_expected, WAIT_S, pipeline.processes)
                burst = BurstStats.of(dump(url), *routed)
    finally:
        codes = [p.stop() for p in pipeline.processes]
        source.close()
    try:
        scan = replay_scan(settings, subs[-1], since)
    finally:
        runtime.close()
        drop_prefix(settings)
    result = ScenarioResult(
        scenario.name, scenario.deliverers, phases, scan, codes, others=others, burst=burst
    )
    return result, subs, pipeline.ok_before


def route_burst(
    source: EventSource, scenario: Scenario, pipeline: Pipeline
) -> tuple[Published, float]:
    """Publish the scenario's burst, then wait until the router has routed all of it.

    The router reads `events` in order and has no per-tenant lanes: events published behind
    the burst wait for it there whatever the deliverer does. Waiting here keeps that known
    cost (reported as `routed_s`) out of the phase, which then measures the deliverer
    working through the burst's backlog beside the others' paced load."""
    routed_before = metric(pipeline.router_port, ROUTED)
    published = source.burst(scenario.burst, scenario.leading.index("burst"))
    pipeline.burst_expected += scenario.burst
    deadline = time.monotonic() + WAIT_S
    while metric(pipeline.router_port, ROUTED) < routed_before + scenario.burst:
        for process in pipeline.processes:
            process.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the router did not route the burst in {WAIT_S:g} s")
        time.sleep(0.05)
    return published, time.time() - published.started_s


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def replay_scan(settings: Settings, sub: Subscription, since: datetime) -> float:
    """Events/s of a real replay job (api.replayer.job_runner) over the scenario's events."""
    if settings.database_url is None:
        return float("nan")
    with replayer_bootstrap(settings) as ports:
        ports.subscriptions.wait_ready(60)
        runner = JobRunner(settings, ports)
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


def ceiling(
    url: str, subs: list[Subscription], count: int, concurrencies: Sequence[int]
) -> Ceiling:
    """bench.deliverer's bare aiohttp client loop against the same receiver, `count` requests
    at each concurrency."""
    commands = _commands(subs, count)
    loop = new_event_loop()
    try:
        per_s = tuple(
            (c, round(loop.run_until_complete(_bare_loop(url, commands, c)), 1))
            for c in dict.fromkeys(concurrencies)
        )
    finally:
        loop.close()
    return Ceiling(per_s, loadavg())


def run(args: argparse.Namespace, base: Settings, command: str) -> int:
    names = args.scenario or ["all"]
    chosen = list(SCENARIOS) if "all" in names else list(dict.fromkeys(names))
    infra = infrastructure(base)
    receiver, url = start_receiver(HANG_S)
    report = Report(command=command, events=args.events, subscriptions=args.subscriptions)
    try:
        ok_before = 0
        for name in chosen:
            result, subs, ok_before = run_scenario(infra, SCENARIOS[name], args, url, ok_before)
            report.scenarios.append(result)
            if report.ceiling is None:
                concurrencies = args.ceiling_concurrency or CEILING_CONCURRENCIES
                report.ceiling = ceiling(url, subs, args.events, concurrencies)
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
