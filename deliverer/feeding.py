"""Feeding the lanes from the backlog, once per loop turn: subscriptions with due work take
turns (`core.backlog_schedule`), each leasing a round of requests within its lane's room.

How many backlogged commands may be leased at once is an AIMD cap (`core.lanes.next_feed_cap`):
halved after a slow loop turn, when fresh commands keep the process busy, so backlogs yield
to them. How many requests may run at once is another (`core.lanes.next_request_limit`): a
tenth lower after a slow turn, shared evenly among the lanes with work. The same turn runs
the backlog's chores now and then: commands that waited too long in a slow lane move to the
backlog, a subscription no longer active is settled at once, and the backlog's gauges are
measured.
"""

from __future__ import annotations

import asyncio
from typing import Final

from core.backlog_schedule import BacklogSchedule
from core.lanes import feed_room, next_feed_cap
from core.records import epoch_ms
from deliverer.backlog_keeper import BacklogKeeper
from deliverer.lanes import Lanes, SubscriptionLookup
from deliverer.metrics import DelivererMetrics
from hookline.runtime.clock import Clock
from hookline.runtime.settings import Settings

SWEEP_INTERVAL_S: Final = 0.25
INACTIVE_CHECK_S: Final = 1.0
MEASURE_INTERVAL_S: Final = 5.0
FEED_SUBSCRIPTIONS_PER_TICK: Final = 64
BUSY_TURN_S: Final = 0.025
"""A loop turn slower than this means fresh commands keep the process busy: backlogs yield."""
FEED_CAP_FLOOR: Final = 4


class Feeder:
    """Leases due backlog into lanes; keeps the feed cap and when each chore last ran."""

    def __init__(
        self,
        settings: Settings,
        *,
        lanes: Lanes,
        keeper: BacklogKeeper,
        schedule: BacklogSchedule,
        lookup: SubscriptionLookup,
        clock: Clock,
        metrics: DelivererMetrics,
        stop: asyncio.Event,
    ) -> None:
        self._max_in_flight = settings.max_in_flight
        self._lanes = lanes
        self._keeper = keeper
        self._schedule = schedule
        self._lookup = lookup
        self._clock = clock
        self._metrics = metrics
        self._stop = stop
        self._swept = 0.0
        self._checked = 0.0
        self._measured = 0.0
        self._fed_at = clock.monotonic()
        self._feed_cap = FEED_CAP_FLOOR

    def feed(self) -> None:
        """Lease due backlog into lanes: subscriptions in turn, a round of requests each."""
        now_s = self._clock.monotonic()
        if now_s - self._swept >= SWEEP_INTERVAL_S:
            self._swept = now_s
            for item in self._lanes.take_stale(now_s):
                self._keeper.put_read(item, "slow")
        if now_s - self._checked >= INACTIVE_CHECK_S:
            self._checked = now_s
            self._wake_inactive()
        if now_s - self._measured >= MEASURE_INTERVAL_S:
            self._measured = now_s
            self._keeper.measure()
        now_ms = epoch_ms(self._clock.now())
        self._schedule.fire(now_ms)
        if self._stop.is_set():
            return
        gap_s = now_s - self._fed_at
        self._fed_at = now_s
        self._feed_cap = next_feed_cap(
            self._feed_cap,
            gap_s=gap_s,
            busy_s=BUSY_TURN_S,
            floor=FEED_CAP_FLOOR,
            ceiling=self._max_in_flight,
        )
        self._metrics.backlog_feed_cap.set(self._feed_cap)
        self._metrics.request_limit.set(self._lanes.pace(gap_s=gap_s, busy_s=BUSY_TURN_S))
        budget = self._feed_cap - self._keeper.leased
        if budget > 0:
            for sub_id in self._schedule.turns(FEED_SUBSCRIPTIONS_PER_TICK):
                budget -= self._feed_one(sub_id, now_ms, budget)
                if budget <= 0:
                    break
        self._keeper.flush()

    def _feed_one(self, sub_id: str, now_ms: int, budget: int) -> int:
        if self._schedule.count(sub_id) <= 0:
            return 0
        lane = self._lanes.lane(sub_id)
        room = min(
            budget,
            feed_room(
                depth=lane.depth,
                concurrency=lane.concurrency,
                ordered=lane.ordered,
                rate_limit=lane.rate_limit,
            ),
        )
        subscription = self._lookup(sub_id)
        inactive = subscription is None or subscription.status != "active"
        if lane.resume_ms > now_ms and not inactive:
            self._keeper.schedule_at(sub_id, lane.resume_ms)  # as the endpoint asked
            return 0
        if room <= 0:
            return 0  # its lane is busy: freeing a slot wakes it
        taken = self._keeper.lend(lane, now_ms=now_ms, room=room, inactive=inactive)
        self._lanes.fill(lane)
        return taken

    def _wake_inactive(self) -> None:
        """A subscription deleted, disabled or paused while backlogged is settled now, not
        when its timers fall due."""
        for sub_id in self._schedule.backlogged():
            if self._schedule.is_waiting_turn(sub_id):
                continue
            subscription = self._lookup(sub_id)
            if subscription is None or subscription.status != "active":
                self._schedule.wake(sub_id)
