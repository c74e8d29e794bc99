"""Commands read from Kafka, dispatched to their subscriptions' lanes or backlogs.

A command whose lane can take it runs from memory (the fast path). A command its
subscription cannot start soon (not yet due, its endpoint asked to wait, earlier commands
backlogged, its lane full or ordered and busy) is written once into the subscription's
backlog, and its offset is finished once that write is acknowledged: a partition never
waits on one subscription. The parts, each with its own state: `Lanes` (what runs from
memory), `Attempts` (one command's attempt), `BacklogKeeper` (into and out of the backlog),
`Feeder` (leasing due backlog into lanes, fairly), `Restorer` (a partition's backlog on
assignment). The dispatcher builds them, admits commands, and supervises their tasks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from core.backlog_schedule import BacklogSchedule
from core.lanes import admit, lane_capacity
from core.records import epoch_ms
from deliverer.attempts import Attempts
from deliverer.backlog import BacklogStore
from deliverer.backlog_keeper import BacklogKeeper
from deliverer.disabling import Disabler
from deliverer.feeding import Feeder
from deliverer.kafka_io import Forward, KafkaIO, Polled, Undecodable
from deliverer.lanes import InFlight, Item, Lanes, SubscriptionLookup
from deliverer.metrics import DelivererMetrics
from deliverer.outputs import Outputs
from deliverer.ports import HttpSender, RestoreBacklog
from deliverer.requests import SigningKeys
from deliverer.restoring import Restorer
from hookline.runtime.clock import Clock
from hookline.runtime.settings import Settings
from schemas.errors import UndecodableRecord
from schemas.records_avro import RecordCodec


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        *,
        io: KafkaIO,
        sender: HttpSender,
        lookup: SubscriptionLookup,
        keys: SigningKeys,
        codec: RecordCodec,
        disabler: Disabler,
        metrics: DelivererMetrics,
        store: BacklogStore,
        restore: RestoreBacklog,
        clock: Clock,
    ) -> None:
        self._io = io
        self._codec = codec
        self._clock = clock
        self._capacity = lane_capacity(
            max_in_flight=settings.max_in_flight, lane_concurrency=settings.lane_concurrency
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._stop = asyncio.Event()
        self._in_flight = InFlight()
        self._metrics = metrics
        self._outputs = Outputs(settings, io=io, codec=codec, metrics=metrics)
        # who has backlog, and whose turn or timer it is: told by the keeper and the
        # restorer, asked by the lanes and the feeder
        self._schedule = schedule = BacklogSchedule()
        self._restorer = Restorer(
            io=io,
            store=store,
            schedule=schedule,
            restore=restore,
            metrics=metrics,
            spawn=self._spawn,
        )
        self._keeper = BacklogKeeper(
            io=io,
            store=store,
            schedule=schedule,
            restorer=self._restorer,
            outputs=self._outputs,
            codec=codec,
            in_flight=self._in_flight,
            clock=clock,
            metrics=metrics,
        )
        attempts = Attempts(
            settings,
            sender=sender,
            lookup=lookup,
            keys=keys,
            disabler=disabler,
            keeper=self._keeper,
            outputs=self._outputs,
            in_flight=self._in_flight,
            clock=clock,
            metrics=metrics,
            stop=self._stop,
            spawn=self._spawn,
        )
        self._lanes = Lanes(
            settings,
            lookup=lookup,
            schedule=schedule,
            clock=clock,
            stop=self._stop,
            spawn=self._spawn,
            run=attempts.run,
        )
        self._feeder = Feeder(
            settings,
            lanes=self._lanes,
            keeper=self._keeper,
            schedule=schedule,
            lookup=lookup,
            clock=clock,
            metrics=metrics,
            stop=self._stop,
        )

    @property
    def failure(self) -> BaseException | None:
        """Why the deliverer must stop: a task's error, or an output Kafka refused."""
        return self._failure or self._outputs.failure

    @property
    def in_flight(self) -> int:
        """Commands read from Kafka whose offsets are not finished yet."""
        return self._in_flight.count

    @property
    def lane_depth(self) -> int:
        return self._lanes.depth

    @property
    def oldest_queued_ms(self) -> int | None:
        return self._lanes.oldest_queued_ms

    @property
    def lanes(self) -> int:
        return len(self._lanes)

    @property
    def backlog_depth(self) -> int:
        return self._schedule.depth

    # -- admission -----------------------------------------------------------------------------

    def submit(self, item: Polled) -> None:
        self._in_flight.read()
        if isinstance(item, Undecodable):
            self._dead_letter(item)
            return
        if isinstance(item, Forward):
            offset = item.message.offset()
            assert offset is not None
            finish = self._in_flight.finisher(item.offsets, offset)
            self._outputs.write_then(self._outputs.forwarded(item.message), finish)
            return
        sub_id = item.subscription_id
        lane = self._lanes.lane(sub_id)
        work = Item(
            sub_id,
            item.value,
            item.partition,
            item.offset,
            self._clock.monotonic(),
            item.created_ms,
            item.due_ms,
            offsets=item.offsets,
        )
        backlogged = self._schedule.count(sub_id) > 0
        now_ms = epoch_ms(self._clock.now())
        if not item.due_ms:
            self._metrics.command_to_deliverer.observe(max(0, now_ms - item.created_ms) / 1000)
        if item.due_ms > now_ms:
            self._keeper.put_read(work, "timer")
        elif lane.resume_ms > now_ms:
            self._keeper.put_read(work, "held")
        elif (
            admit(
                depth=lane.depth,
                capacity=self._capacity,
                ordered=lane.ordered,
                backlogged=backlogged,
            )
            == "backlog"
        ):
            self._keeper.put_read(work, "busy")
        else:
            try:
                work.command = self._codec.decode_delivery_command(item.value)
            except UndecodableRecord as exc:
                error = exc.at(item.topic, item.partition, item.offset)
                self._dead_letter(Undecodable(item.message, error, item.offsets))
                return
            lane.queue.append(work)
            self._lanes.fill(lane)

    def _dead_letter(self, item: Undecodable) -> None:
        assert item.error.offset is not None
        finish = self._in_flight.finisher(item.offsets, item.error.offset)
        self._outputs.write_then(self._outputs.undecodable_record(item.message, item.error), finish)

    def feed(self) -> None:
        """Lease due backlog into lanes (`Feeder.feed`)."""
        self._feeder.feed()

    # -- rebalances ----------------------------------------------------------------------------

    def assigned(self, partitions: Sequence[int]) -> None:
        self._restorer.assigned(partitions)

    def revoked(self, partitions: Sequence[int]) -> None:
        gone = set(partitions)
        self._restorer.revoked(gone)
        for item in self._lanes.take_revoked(gone):
            # the new owner re-reads it (from the committed offset or the changelog)
            if item.offsets is not None:
                self._in_flight.forget()
            self._keeper.returned(item)

    # -- tasks and stopping --------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    async def drain(self, *, timeout_s: float) -> None:
        """Stop starting work; hand queued commands read from Kafka to the backlog; wait for
        running attempts (each ends by its deadline) and their outputs."""
        self._stop.set()
        for item in self._lanes.take_queued():
            self._keeper.hand_back(item)
        deadline = time.monotonic() + timeout_s  # real waiting, bounded in real time
        while (
            (self._tasks or self._outputs.unacknowledged)
            and time.monotonic() < deadline
            and self.failure is None
        ):
            self._io.tick()
            await asyncio.sleep(0.005)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
