"""`deliverer.lanes.Lanes` under a request limit: the lanes with work share it evenly, a
hostile tenant's hanging requests never take another lane's share, and only lanes that
finish nothing are swept into the backlog."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest

from core.backlog_schedule import BacklogSchedule
from core.lanes import PartitionOffsets
from deliverer.lanes import REQUEST_LIMIT_FLOOR, Item, Lane, Lanes, Slot
from hookline.runtime.settings import Settings
from tests.factories import subscription
from tests.fakes import ManualClock

NOW = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
SUBSCRIPTIONS = {f"s{i}": subscription(f"s{i}") for i in range(12)}


class _Endpoints:
    """Attempts that hold their slot until `answer_all`, like requests to slow endpoints."""

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[None]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.stop = asyncio.Event()

    def spawn(self, attempt: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(attempt)
        self.tasks.append(task)
        return task

    async def run(self, _lane: Lane, _item: Item, slot: Slot) -> None:
        answer = asyncio.get_running_loop().create_future()
        self.waiting.append(answer)
        await answer
        slot.release()

    async def answer_all(self) -> None:
        answered, self.waiting = self.waiting, []
        for answer in answered:
            answer.set_result(None)
        for _ in range(3):  # the attempts end, their lanes start the next
            await asyncio.sleep(0)


@pytest.fixture
async def endpoints() -> AsyncIterator[_Endpoints]:
    endpoints = _Endpoints()
    yield endpoints
    endpoints.stop.set()  # nothing new starts
    for answer in endpoints.waiting:
        if not answer.done():
            answer.set_result(None)
    await asyncio.gather(*endpoints.tasks)


def _lanes(endpoints: _Endpoints, clock: ManualClock | None = None) -> Lanes:
    return Lanes(
        Settings(lane_concurrency=16),
        lookup=SUBSCRIPTIONS.get,
        schedule=BacklogSchedule(),
        clock=clock or ManualClock(NOW),
        stop=endpoints.stop,
        spawn=endpoints.spawn,
        run=endpoints.run,
    )


async def _queue(lanes: Lanes, sub_id: str, count: int) -> Lane:
    lane = lanes.lane(sub_id)
    for seq in range(count):
        lane.queue.append(Item(sub_id, b"", 0, seq, 1000.0, 0, offsets=PartitionOffsets()))
    lanes.fill(lane)
    await asyncio.sleep(0)
    return lane


async def test_a_lane_alone_runs_its_whole_concurrency(endpoints: _Endpoints) -> None:
    lanes = _lanes(endpoints)

    lane = await _queue(lanes, "s0", 50)

    assert lane.running == 16
    assert len(endpoints.waiting) == 16


async def test_busy_lanes_share_the_limit_evenly(endpoints: _Endpoints) -> None:
    lanes = _lanes(endpoints)
    lanes.request_limit = 40
    busy = [await _queue(lanes, f"s{i}", 50) for i in range(10)]

    await endpoints.answer_all()

    assert [lane.running for lane in busy] == [4] * 10
    assert len(endpoints.waiting) == 40


async def test_hanging_lanes_never_take_a_newcomers_share(endpoints: _Endpoints) -> None:
    lanes = _lanes(endpoints)
    hanging = [await _queue(lanes, f"s{i}", 50) for i in range(10)]
    assert sum(lane.running for lane in hanging) == 160  # a hostile tenant's, never answered
    lanes.request_limit = 64  # the process got busy

    newcomer = await _queue(lanes, "s10", 50)

    assert newcomer.running == 64 // 11


async def test_a_lane_that_finishes_requests_keeps_its_waiting_commands(
    endpoints: _Endpoints,
) -> None:
    clock = ManualClock(NOW)
    lanes = _lanes(endpoints, clock)
    lanes.request_limit = 20
    moving, hanging = await _queue(lanes, "s0", 50), await _queue(lanes, "s1", 50)
    assert (moving.running, hanging.running) == (16, 10)  # the first came alone
    clock.advance(0.6)
    for answer in endpoints.waiting[:16]:  # the moving lane's endpoint answers
        answer.set_result(None)
    await asyncio.sleep(0)
    clock.advance(0.6)  # 1.2 s since the commands were queued

    swept = lanes.take_stale(clock.monotonic())

    assert {item.subscription_id for item in swept} == {"s1"}, "only the lane that hangs"
    assert len(swept) == 50 - 10
    assert moving.running == 10, "its share, now that it has company"
    assert len(moving.queue) == 50 - 16 - 10


async def test_slow_turns_lower_the_limit_to_its_floor_and_quiet_ones_raise_it(
    endpoints: _Endpoints,
) -> None:
    lanes = _lanes(endpoints)
    assert lanes.pace(gap_s=0.030, busy_s=0.025) == 1024 - 102
    for _ in range(50):
        lanes.pace(gap_s=0.030, busy_s=0.025)
    assert lanes.request_limit == REQUEST_LIMIT_FLOOR
    assert lanes.pace(gap_s=0.001, busy_s=0.025) == REQUEST_LIMIT_FLOOR + 1
