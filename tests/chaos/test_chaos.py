"""Faults under a steady load (issue 7): kill -9 of the router, the deliverer, the projector
and the broker, a broker paused for 20 s, a PostgreSQL restart, and all of them in one run;
and (issue 12) kill -9 of a deliverer holding a backlog of 50,000 commands, which the next
one restores from the backlog's changelog.

Each scenario runs the three services as processes on the suite's own broker and database,
publishes 50 events/s, injects its faults at seeded random moments, restarts what it
killed, then reconciles: every accepted event reached every matching subscription at least
once (duplicates counted by webhook-id), and the PostgreSQL history shows exactly the
deliveries the receiver answered 2xx to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest
from confluent_kafka import Consumer, TopicPartition

from core.records import Subscription
from hookline.app.receiver import Answer, FailThenAnswer, Hang, Receiver
from hookline.runtime.kafka import reader_config
from hookline.runtime.settings import Settings
from hookline.runtime.topics import ensure_topics
from tests.chaos.conftest import ChaosStack
from tests.chaos.harness import (
    FLAKY_PATH,
    SERVICES,
    Crash,
    ServiceProcess,
    SteadyLoad,
    Subscribed,
    expected_pairs,
    service_environment,
    subscribe,
)
from tests.chaos.reconcile import Report, history, history_gaps, seen, worst_latency_s

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(420)]

RATE_PER_S: Final = 50.0
PAUSE_S: Final = 20.0
DELIVERED_WITHIN_S: Final = 90.0
PROJECTED_WITHIN_S: Final = 60.0
STALL_WINDOW_S: Final = 20.0


@dataclass(frozen=True, slots=True)
class Resumption:
    """How long after a fault every delivery called for by the events submitted before it
    had arrived: when delivery had resumed on every partition the fault stalled (None: not
    by the end of the scenario); and the worst wait of an event published in the
    `STALL_WINDOW_S` after it (`worst_latency_s`)."""

    fault: str
    seconds: float | None
    at: float  # epoch seconds
    worst_after_s: float | None = None

    def text(self) -> str:
        took = "never" if self.seconds is None else f"{self.seconds:.1f}s"
        worst = "-" if self.worst_after_s is None else f"{self.worst_after_s:.1f}s"
        return f"{self.fault}: {took} (worst wait after: {worst})"


@dataclass(slots=True)
class Run:
    """One scenario's live parts: the stack, the service processes, the crashes seen."""

    stack: ChaosStack
    settings: Settings
    rng: random.Random
    services: dict[str, ServiceProcess]
    receiver: Receiver
    load: SteadyLoad | None = None
    subscribed: Subscribed | None = None
    crashes: list[Crash] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    watches: list[tuple[str, asyncio.Task[Resumption]]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, what: str) -> None:
        line = f"{time.monotonic() - self.started:6.1f}s {what}"
        self.faults.append(line.strip())
        print(line, flush=True)

    def watch_resumption(self, fault: str) -> None:
        """Call just before injecting `fault`: measures its `Resumption` from now."""
        assert self.load is not None
        watch = self._resumed(fault, len(self.load.submitted), time.monotonic(), time.time())
        self.watches.append((fault, asyncio.create_task(watch)))

    async def _resumed(self, fault: str, count: int, since: float, at: float) -> Resumption:
        assert self.load is not None
        assert self.subscribed is not None
        subs, by_path = self.subscribed.subscriptions, self.subscribed.by_path
        while True:
            accepted = self.load.accepted_of_first(count)
            if accepted is not None:
                wanted = expected_pairs(accepted, subs)
                if wanted <= seen(self.receiver.received, by_path).pairs:
                    took = time.monotonic() - since
                    self.note(f"delivery resumed {took:.1f}s after {fault}")
                    return Resumption(fault, took, at)
            await asyncio.sleep(0.5)

    async def resumptions(self) -> list[Resumption]:
        """Each watched fault's resumption; the ones still waiting count as never."""
        if self.watches:
            await asyncio.wait([task for _, task in self.watches], timeout=5.0)
        found: list[Resumption] = []
        for fault, task in self.watches:
            if task.done():
                found.append(task.result())
            else:
                task.cancel()
                found.append(Resumption(fault, None, time.time()))
        return found

    async def supervise(self) -> None:
        """Restart a service that exited on its own, as a process manager would; record it."""
        while True:
            for process in self.services.values():
                crash = process.crashed()
                if crash is not None:
                    self.crashes.append(crash)
                    self.note(f"{crash.service} CRASHED (exit {crash.returncode}); restarting")
                    process.start()
            await asyncio.sleep(0.5)


Fault = Callable[[Run], Awaitable[None]]


def kill_service(name: str) -> Fault:
    async def fault(run: Run) -> None:
        run.note(f"kill -9 {name}")
        run.services[name].kill()
        await asyncio.sleep(run.rng.uniform(0.0, 2.0))
        run.services[name].start()
        run.note(f"{name} restarted")

    return fault


async def kill_broker(run: Run) -> None:
    run.note("kill -9 broker")
    await asyncio.to_thread(run.stack.kill_broker)
    await asyncio.sleep(run.rng.uniform(0.0, 2.0))
    await asyncio.to_thread(run.stack.start_broker)
    run.note("broker restarted")


async def pause_broker(run: Run) -> None:
    run.note(f"SIGSTOP broker for {PAUSE_S:.0f}s")
    run.stack.pause_broker()
    try:
        await asyncio.sleep(PAUSE_S)
    finally:
        run.stack.resume_broker()
    run.note("SIGCONT broker")


async def restart_postgres(run: Run) -> None:
    run.note("stop PostgreSQL")
    await asyncio.to_thread(run.stack.stop_postgres)
    await asyncio.sleep(run.rng.uniform(0.0, 2.0))
    await asyncio.to_thread(run.stack.start_postgres)
    run.note("PostgreSQL restarted")


BACKLOG_EVENTS: Final = 25_000
BACKLOG_PATHS: Final = ("/all", "/meetings")  # the routes a meeting.ended event goes to


async def kill_deliverer_holding_a_backlog(run: Run) -> None:
    """Two endpoints hang while a burst of 25,000 meeting.ended events arrives: 50,000
    commands go into their backlogs. kill -9 the deliverer, let the endpoints answer again,
    and start a new one: it restores the backlogs from the changelog."""
    assert run.load is not None
    for path in BACKLOG_PATHS:
        run.receiver.behaviours[path] = Hang()
    run.note(f"{' and '.join(BACKLOG_PATHS)} hang; a burst of {BACKLOG_EVENTS} meeting.ended")
    await asyncio.to_thread(run.load.publish_burst, BACKLOG_EVENTS, "meeting.ended")
    wanted = len(BACKLOG_PATHS) * BACKLOG_EVENTS
    await wait_for(
        lambda: _backlog_records_at_least(run.settings, wanted),
        timeout_s=180,
        what=f"a backlog of {wanted} commands",
    )
    run.note(f"kill -9 deliverer holding a backlog of at least {wanted} commands")
    run.services["deliverer"].kill()
    for path in BACKLOG_PATHS:
        run.receiver.behaviours[path] = Answer()
    await asyncio.sleep(run.rng.uniform(0.0, 2.0))
    run.services["deliverer"].start()
    run.note("deliverer restarted; it restores the backlog")


async def _backlog_records_at_least(settings: Settings, count: int) -> bool:
    return await asyncio.to_thread(_backlog_records, settings) >= count


def _backlog_records(settings: Settings) -> int:
    """Records on the backlog's changelog (puts and tombstones; nothing compacted yet)."""
    topic = settings.topic("deliverer-backlog")
    consumer = Consumer(reader_config(settings, client_id="chaos-backlog-size"))
    try:
        total = 0
        for partition in range(settings.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


FAULTS: Final[dict[str, Fault]] = {
    "router": kill_service("router"),
    "deliverer": kill_service("deliverer"),
    "projector": kill_service("projector"),
    "broker": kill_broker,
    "broker-pause": pause_broker,
    "postgres": restart_postgres,
}
BACKLOG_FAULTS: Final[dict[str, Fault]] = {"deliverer-backlog": kill_deliverer_holding_a_backlog}


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float,
    what: str,
    progress: Callable[[], str] | None = None,
    required: bool = True,
) -> bool:
    """Poll `condition`; when it stays false, raise (or return False when not `required`)."""
    deadline = time.monotonic() + timeout_s
    next_report = time.monotonic() + 10.0
    while not await condition():
        now = time.monotonic()
        if now > deadline:
            if not required:
                return False
            raise AssertionError(f"{what}: not within {timeout_s:.0f}s")
        if progress is not None and now > next_report:
            print(f"         waiting: {progress()}", flush=True)
            next_report = now + 10.0
        await asyncio.sleep(0.5)
    return True


ONE_OF_EACH: Final = dict.fromkeys(SERVICES, 1)


def service_processes(
    layout: Mapping[str, int], env: Mapping[str, str], logs: Path
) -> dict[str, ServiceProcess]:
    """`layout[service]` processes of each service, named `service` when alone and
    `service-n` beside others (each router with an instance id of its own)."""
    processes: dict[str, ServiceProcess] = {}
    for service, count in layout.items():
        for n in range(1, count + 1):
            name = service if count == 1 else f"{service}-{n}"
            log = logs / f"{name}.log"
            processes[name] = ServiceProcess(service, env, log, instance_id=f"chaos-{name}")
    return processes


async def scenario(
    stack: ChaosStack,
    reports: list[Report],
    tmp_path: Path,
    *,
    name: str,
    seed: int,
    faults: list[str],
    load_s: float,
    window_s: tuple[float, float],
    catalogue: Mapping[str, Fault] | None = None,
    layout: Mapping[str, int] = ONE_OF_EACH,
    resumes_within_s: float | None = None,
) -> None:
    """`faults` (names in `catalogue`, by default the single broker's) at seeded moments of
    `window_s` under `load_s` of load; when `resumes_within_s` is set, delivery must have
    resumed that soon after each fault the catalogue's faults watch."""
    catalogue = catalogue or FAULTS | BACKLOG_FAULTS
    seed = seed ^ zlib.crc32(name.encode())
    rng = random.Random(seed)
    print(f"\nchaos scenario {name}: seed {seed}", flush=True)
    settings = stack.settings()
    await asyncio.to_thread(ensure_topics, settings)
    env = service_environment(settings)
    processes = service_processes(layout, env, tmp_path)
    async with Receiver(behaviours={FLAKY_PATH: FailThenAnswer(1, 503)}) as receiver:
        run = Run(stack, settings, rng, processes, receiver)
        subscribed = await asyncio.to_thread(subscribe, settings, receiver.url(""))
        run.subscribed = subscribed
        receiver.secrets.extend(subscribed.secrets)
        subs, by_path = subscribed.subscriptions, subscribed.by_path
        for process in processes.values():
            process.start()
        supervisor = asyncio.create_task(run.supervise())
        load = await asyncio.to_thread(SteadyLoad, settings, rate_per_s=RATE_PER_S, seed=seed)
        run.load = load
        try:
            # warm-up: every service up, subscriptions loaded, history written
            warm = expected_pairs(await asyncio.to_thread(load.publish_now, 6), subs)
            await wait_for(
                lambda: _have(receiver, by_path, warm), timeout_s=90, what="warm-up deliveries"
            )
            await wait_for(lambda: _projected(settings, warm), timeout_s=60, what="warm-up history")
            run.note("warm; load starts")
            load.start()
            loaded_at = time.monotonic()
            moments = sorted(rng.uniform(*window_s) for _ in faults)
            for at_s, fault in zip(moments, rng.sample(faults, len(faults)), strict=True):
                await asyncio.sleep(max(0.0, loaded_at + at_s - time.monotonic()))
                await catalogue[fault](run)
            # the load goes on a while after the last fault, whenever that ended
            end_at = max(loaded_at + load_s, time.monotonic() + 5.0)
            await asyncio.sleep(end_at - time.monotonic())
            await asyncio.to_thread(load.stop)
            run.note(f"load stopped: {len(load.accepted)} accepted, {len(load.refused)} refused")
            expected = expected_pairs(load.accepted, subs)
            # on a timeout the reconciliation below says what is missing
            received = await wait_for(
                lambda: _have(receiver, by_path, expected),
                timeout_s=DELIVERED_WITHIN_S,
                what="deliveries missing",
                progress=lambda: (
                    f"{len(expected - seen(receiver.received, by_path).pairs)}"
                    f" of {len(expected)} deliveries missing"
                ),
                required=False,
            )
            if received:
                run.note("every expected delivery received")
            if received and await wait_for(
                lambda: _projected(settings, expected),
                timeout_s=PROJECTED_WITHIN_S,
                what="history incomplete",
                required=False,
            ):
                run.note("history complete")
        finally:
            supervisor.cancel()
            await asyncio.to_thread(load.stop)  # idempotent; here for a failed scenario
            resumptions = await run.resumptions()
            # a process killed for good (scale-out) has nothing left to stop
            codes = {
                s: await asyncio.to_thread(p.stop, 20.0) for s, p in processes.items() if p.running
            }
        saw = seen(receiver.received, by_path)
    rows = await asyncio.to_thread(history, settings)

    lost = expected - saw.pairs
    resumptions = [
        dataclasses.replace(
            r,
            worst_after_s=worst_latency_s(
                load.accepted,
                subs,
                receiver.received,
                by_path,
                since=r.at,
                within_s=STALL_WINDOW_S,
            ),
        )
        for r in resumptions
    ]
    report = Report(
        scenario=name,
        seed=seed,
        accepted=len(load.accepted),
        refused=len(load.refused),
        expected=len(expected),
        delivered=len(saw.pairs & expected),
        lost=len(lost),
        duplicates=saw.duplicates,
        duplicated_ids=saw.duplicated_ids,
        faults=tuple(f for f in run.faults if "kill" in f or "SIG" in f or "stop " in f),
        seconds=time.monotonic() - run.started,
        resumed=tuple(r.text() for r in resumptions),
    )
    reports.append(report)
    print(report.line(), flush=True)

    crashes = "\n\n".join(f"{c.service} exit {c.returncode}:\n{c.log_tail}" for c in run.crashes)
    assert not run.crashes, f"services crashed:\n{crashes}"
    assert codes == dict.fromkeys(codes, 0), f"SIGTERM did not drain cleanly: {codes}"
    assert not lost, f"{len(lost)} deliveries lost"
    assert saw.pairs <= expected_pairs(load.submitted, subs), "a delivery no event called for"
    assert saw.unverified == 0, f"{saw.unverified} requests failed signature verification"
    assert saw.inconsistent_bodies == 0, "a redelivery carried a different body"
    delivered_rows = {pair for pair, row in rows.items() if row.status == "delivered"}
    assert delivered_rows == saw.pairs, (
        f"history shows {len(delivered_rows - saw.pairs)} deliveries the receiver never saw"
        f" and misses {len(saw.pairs - delivered_rows)} it saw"
    )
    too_many = [p for p in saw.pairs if rows[p].delivered_attempts > saw.successes[p]]
    assert not too_many, f"{len(too_many)} deliveries with more delivered attempts than requests"
    if resumes_within_s is not None:
        slow = [r.text() for r in resumptions if r.seconds is None or r.seconds > resumes_within_s]
        assert not slow, f"delivery did not resume within {resumes_within_s:.0f}s: {slow}"


async def _have(
    receiver: Receiver, by_path: Mapping[str, Subscription], wanted: set[tuple[str, str]]
) -> bool:
    return wanted <= seen(receiver.received, by_path).pairs


async def _projected(settings: Settings, wanted: set[tuple[str, str]]) -> bool:
    try:
        rows = await asyncio.to_thread(history, settings)
    except Exception:  # noqa: BLE001 - PostgreSQL may be restarting: ask again later
        return False
    return not history_gaps(rows, wanted)


SINGLE: Final = [
    pytest.param("router", 20.0, (3.0, 12.0), id="router"),
    pytest.param("deliverer", 20.0, (3.0, 12.0), id="deliverer"),
    pytest.param("projector", 20.0, (3.0, 12.0), id="projector"),
    pytest.param("broker", 20.0, (3.0, 10.0), id="broker"),
    pytest.param("broker-pause", 28.0, (3.0, 6.0), id="broker-pause"),
    pytest.param("postgres", 20.0, (3.0, 12.0), id="postgres"),
]


@pytest.mark.parametrize(("fault", "load_s", "window_s"), SINGLE)
async def test_one_fault_under_load(  # noqa: PLR0917 - fixtures and parameters
    chaos_stack: ChaosStack,
    chaos_reports: list[Report],
    chaos_seed: int,
    tmp_path: Path,
    fault: str,
    load_s: float,
    window_s: tuple[float, float],
) -> None:
    await scenario(
        chaos_stack,
        chaos_reports,
        tmp_path,
        name=fault,
        seed=chaos_seed,
        faults=[fault],
        load_s=load_s,
        window_s=window_s,
    )


async def test_kill_9_of_a_deliverer_holding_a_backlog(
    chaos_stack: ChaosStack, chaos_reports: list[Report], chaos_seed: int, tmp_path: Path
) -> None:
    await scenario(
        chaos_stack,
        chaos_reports,
        tmp_path,
        name="deliverer-backlog",
        seed=chaos_seed,
        faults=["deliverer-backlog"],
        load_s=20.0,
        window_s=(3.0, 6.0),
    )


async def test_every_fault_in_one_run(
    chaos_stack: ChaosStack, chaos_reports: list[Report], chaos_seed: int, tmp_path: Path
) -> None:
    await scenario(
        chaos_stack,
        chaos_reports,
        tmp_path,
        name="everything",
        seed=chaos_seed,
        faults=list(FAULTS),
        load_s=50.0,
        window_s=(3.0, 25.0),
    )
