"""Faults of a three-broker cluster under a steady load (issue 18): kill -9 of the broker
leading the most partitions, kill -9 of the active controller, a rolling restart of all
three, one broker paused for 30 s; and scale-out: three deliverers and two routers, one of
each killed for good mid-run.

Topics keep 3 replicas with `min.insync.replicas=2` (Kafka's offsets and transaction state
too), so one broker lost costs nothing: every scenario reconciles as the single broker's do
(nothing accepted lost, duplicates counted by webhook-id, the history equal to what the
receiver saw), and delivery must resume within 30 s of each broker fault: every delivery
called for by the events submitted before the fault has arrived by then.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

import pytest

from tests.chaos.cluster import busiest_leader, out_of_sync, partitions
from tests.chaos.conftest import ChaosStack
from tests.chaos.reconcile import Report
from tests.chaos.test_chaos import Fault, Run, scenario, wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.cluster, pytest.mark.timeout(420)]

BROKERS: Final = 3
RESUMES_WITHIN_S: Final = 30.0  # the contract
PAUSE_S: Final = 30.0
DOWN_S: Final = (5.0, 15.0)  # how long a killed broker stays down: the cluster runs on two
IN_SYNC_WITHIN_S: Final = 120.0


async def _busiest_leader(run: Run) -> int:
    views = await asyncio.to_thread(partitions, run.stack.bootstrap, run.settings.topic_prefix)
    return busiest_leader(views)


async def _back_in_sync(run: Run) -> None:
    """Every partition of the run's topics and Kafka's own with all three replicas in sync."""

    async def in_sync() -> bool:
        views = await asyncio.to_thread(partitions, run.stack.bootstrap, run.settings.topic_prefix)
        return not out_of_sync(views, BROKERS)

    await wait_for(in_sync, timeout_s=IN_SYNC_WITHIN_S, what="replicas back in sync")
    run.note("every replica in sync")


async def _kill_and_restart(run: Run, node: int, why: str) -> None:
    run.note(f"kill -9 broker {node} ({why})")
    run.watch_resumption(f"kill -9 broker {node}")
    await asyncio.to_thread(run.stack.kill_broker, node)
    await asyncio.sleep(run.rng.uniform(*DOWN_S))
    await asyncio.to_thread(run.stack.start_broker)
    run.note(f"broker {node} restarted")
    await _back_in_sync(run)


async def kill_busiest_leader(run: Run) -> None:
    await _kill_and_restart(run, await _busiest_leader(run), "leads the most partitions")


async def kill_active_controller(run: Run) -> None:
    await _kill_and_restart(run, run.stack.active_controller(), "the active controller")


async def rolling_restart(run: Run) -> None:
    """SIGTERM each broker in turn, wait until it has exited, start it, wait until every
    replica is in sync again, then the next."""
    for node in range(1, BROKERS + 1):
        run.note(f"SIGTERM broker {node} (rolling restart)")
        run.watch_resumption(f"restart of broker {node}")
        await asyncio.to_thread(run.stack.stop_broker, node)
        await asyncio.to_thread(run.stack.start_broker)
        run.note(f"broker {node} restarted")
        await _back_in_sync(run)


async def pause_busiest_leader(run: Run) -> None:
    node = await _busiest_leader(run)
    run.note(f"SIGSTOP broker {node} for {PAUSE_S:.0f}s (leads the most partitions)")
    run.watch_resumption(f"SIGSTOP broker {node}")
    run.stack.pause_broker(node)
    try:
        await asyncio.sleep(PAUSE_S)
    finally:
        run.stack.resume_broker(node)
    run.note(f"SIGCONT broker {node}")
    await _back_in_sync(run)


def kill_for_good(name: str) -> Fault:
    """kill -9 one of several processes of a service, not restarted: its group's survivors
    take its partitions over."""

    async def fault(run: Run) -> None:
        run.note(f"kill -9 {name} for good")
        run.watch_resumption(f"kill -9 {name}")
        run.services[name].kill()

    return fault


CLUSTER_FAULTS: Final[dict[str, Fault]] = {
    "kill-leader": kill_busiest_leader,
    "kill-controller": kill_active_controller,
    "rolling-restart": rolling_restart,
    "pause": pause_busiest_leader,
    "kill-deliverer-2": kill_for_good("deliverer-2"),
    "kill-router-2": kill_for_good("router-2"),
}

BROKER_FAULTS: Final = [
    pytest.param("kill-leader", 60.0, (10.0, 20.0), id="kill-leader"),
    pytest.param("kill-controller", 60.0, (10.0, 20.0), id="kill-controller"),
    pytest.param("rolling-restart", 60.0, (5.0, 10.0), id="rolling-restart"),
    pytest.param("pause", 60.0, (5.0, 10.0), id="pause"),
]


@pytest.mark.parametrize(("fault", "load_s", "window_s"), BROKER_FAULTS)
async def test_one_broker_fault_of_three_under_load(  # noqa: PLR0917 - fixtures and parameters
    cluster_stack: ChaosStack,
    chaos_reports: list[Report],
    chaos_seed: int,
    tmp_path: Path,
    fault: str,
    load_s: float,
    window_s: tuple[float, float],
) -> None:
    await scenario(
        cluster_stack,
        chaos_reports,
        tmp_path,
        name=f"3 brokers: {fault}",
        seed=chaos_seed,
        faults=[fault],
        load_s=load_s,
        window_s=window_s,
        catalogue=CLUSTER_FAULTS,
        resumes_within_s=RESUMES_WITHIN_S,
    )


async def test_three_deliverers_and_two_routers_lose_one_of_each(
    cluster_stack: ChaosStack, chaos_reports: list[Report], chaos_seed: int, tmp_path: Path
) -> None:
    """Scale-out: the time until the survivors deliver what the killed ones held is the
    time to rebalance (reported; the group's session timeout is 20 s)."""
    await scenario(
        cluster_stack,
        chaos_reports,
        tmp_path,
        name="3 brokers: scale-out",
        seed=chaos_seed,
        faults=["kill-deliverer-2", "kill-router-2"],
        load_s=60.0,
        window_s=(10.0, 30.0),
        catalogue=CLUSTER_FAULTS,
        layout={"router": 2, "deliverer": 3, "projector": 1},
    )
