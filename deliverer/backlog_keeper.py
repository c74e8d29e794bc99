"""Commands into and out of their subscriptions' backlogs, as the lanes and the attempts ask.

In: a command read from Kafka (its offset finished once its changelog record is
acknowledged), a retry (replacing its entry), a command handed back unattempted. Out: due
commands lent to a lane, the subscription then given its next turn or timer. Settled: a
tombstone. Each write goes to the local store (when it holds the partition), the changelog
and the schedule of who has due work.
"""

from __future__ import annotations

from typing import Final

from core.backlog_schedule import BacklogSchedule
from core.records import DeliveryCommand, epoch_ms
from deliverer.backlog import BacklogStore, Entry, Taken, entry_key
from deliverer.kafka_io import KafkaIO
from deliverer.lanes import InFlight, Item, Lane
from deliverer.metrics import DelivererMetrics
from deliverer.outputs import Outputs, Record
from deliverer.restoring import Restorer
from hookline.runtime.clock import Clock
from schemas.errors import UndecodableRecord
from schemas.records_avro import RecordCodec

BACKLOGGED_WHY: Final = ("busy", "slow", "retry", "timer", "held", "handover")
TOP_BACKLOGS: Final = 5


class BacklogKeeper:
    """Writes backlog entries and lends them; `leased` counts those lent to lanes."""

    def __init__(
        self,
        *,
        io: KafkaIO,
        store: BacklogStore,
        schedule: BacklogSchedule,
        restorer: Restorer,
        outputs: Outputs,
        codec: RecordCodec,
        in_flight: InFlight,
        clock: Clock,
        metrics: DelivererMetrics,
    ) -> None:
        self._io = io
        self._store = store
        self._schedule = schedule
        self._restorer = restorer
        self._outputs = outputs
        self._codec = codec
        self._in_flight = in_flight
        self._clock = clock
        self._metrics = metrics
        self._backlogged = {why: metrics.backlogged.labels(why) for why in BACKLOGGED_WHY}
        self.leased = 0
        """Backlogged commands lent to lanes."""

    # -- in ------------------------------------------------------------------------------------

    def put_read(self, item: Item, why: str) -> None:
        """Write a command read from Kafka into its subscription's backlog; its offset is
        finished once the changelog record is acknowledged."""
        item.key = entry_key(item.seq)
        entry = Entry(
            key=item.key,
            partition=item.partition,
            subscription_id=item.subscription_id,
            seq=item.seq,
            due_ms=item.due_ms,
            created_ms=item.created_ms,
            value=item.value,
        )
        self._store_put(entry, new=True)  # its key is its offset: never seen before
        self._backlogged[why].inc()
        offsets, item.offsets = item.offsets, None
        self._outputs.write_then(
            [self._outputs.put(entry)], self._in_flight.finisher(offsets, item.seq)
        )

    def settle(self, item: Item, retry: DeliveryCommand | None) -> list[Record]:
        """An attempted (or unsendable) command's backlog records: a `retry` replaces its
        entry (a new entry for a command read from Kafka), anything final deletes it."""
        records: list[Record] = []
        if retry is not None:
            new = item.key is None  # read from Kafka: a new entry; leased: it replaces its own
            item.key = item.key or entry_key(item.seq)
            entry = self._entry(item, retry)
            self._store_put(entry, new=new)
            self._backlogged["retry"].inc()
            records.append(self._outputs.put(entry))
        elif item.key is not None:
            self._store_delete(item)
            records.append(self._outputs.tombstone(item.partition, item.key))
        self.returned(item)
        return records

    def hand_back(self, item: Item, why: str = "handover") -> None:
        """A command not attempted (stopping, or its endpoint asked to wait): into the
        backlog when it came from Kafka, given back to the backlog when it was leased."""
        if item.offsets is not None:
            self.put_read(item, why)
        elif item.leased:
            self.returned(item)
            if item.key is not None and self._io.owns(item.partition):
                self._store.unlease(item.partition, item.key)

    def returned(self, item: Item) -> None:
        """A leased command is no longer the lane's (settled, handed back or revoked)."""
        if item.leased:
            item.leased = False
            self.leased -= 1

    def _entry(self, item: Item, command: DeliveryCommand) -> Entry:
        """The backlog entry of a command that changed (a retry): encoded anew."""
        assert item.key is not None
        due = command.not_before
        return Entry(
            key=item.key,
            partition=item.partition,
            subscription_id=command.subscription_id,
            seq=item.seq,
            due_ms=0 if due is None else epoch_ms(due),
            created_ms=epoch_ms(command.created_at),
            value=self._codec.encode_delivery_command(command),
        )

    def _store_put(self, entry: Entry, *, new: bool) -> None:
        """Into the local store; `new` when it adds an entry rather than replacing one."""
        if not self._restorer.holds(entry.partition):
            return  # not ours (revoked meanwhile): the changelog record is what counts
        self._store.put(entry)
        if new:
            self._schedule.added(entry.subscription_id)
        self.schedule_at(entry.subscription_id, entry.due_ms)

    def _store_delete(self, item: Item) -> None:
        if item.key is None or not self._restorer.holds(item.partition):
            return
        self._store.delete(item.partition, item.key)
        self._schedule.removed(item.subscription_id)

    # -- out -----------------------------------------------------------------------------------

    def lend(self, lane: Lane, *, now_ms: int, room: int, inactive: bool) -> int:
        """Lend up to `room` due commands of the lane's subscription to its queue (timers
        ignored when it is `inactive`: they are settled, not sent), then give the
        subscription its next turn or timer; how many entries were taken."""
        sub_id = lane.subscription_id
        taken = self._store.take(
            sub_id, now_ms=now_ms, limit=room, ordered=lane.ordered, ignore_due=inactive
        )
        now_s = self._clock.monotonic()
        for row in taken:
            try:
                command = self._codec.decode_delivery_command(row.value)
            except UndecodableRecord as exc:
                self._dead_letter(sub_id, row, exc)
                continue
            lane.queue.append(
                Item(
                    sub_id,
                    row.value,
                    row.partition,
                    row.seq,
                    now_s,
                    epoch_ms(command.created_at),
                    command=command,
                    key=row.key,
                    leased=True,
                )
            )
            self.leased += 1
        if len(taken) == room and not lane.ordered:
            self._schedule.wake(sub_id)  # more may be due: back of the round
        elif not taken or lane.ordered:
            next_due = self._store.next_due(sub_id, ordered=lane.ordered)
            if next_due is not None and not inactive:
                self.schedule_at(sub_id, max(next_due, now_ms + 1))
            elif next_due is None and not lane.ordered:
                # nothing left to lend: the count is the store's (heals any drift after a
                # rebalance re-read an offset the restore had already brought back)
                self._schedule.recount(sub_id, self._store.count(sub_id))
        return len(taken)

    def _dead_letter(self, sub_id: str, row: Taken, error: UndecodableRecord) -> None:
        """A backlog entry that cannot be decoded: dead-letter its bytes, drop the entry."""
        self._store.delete(row.partition, row.key)
        self._schedule.removed(sub_id)
        self._outputs.write_then(
            self._outputs.undecodable_entry(sub_id, row, error),
            self._in_flight.finisher(None, row.seq),  # an entry holds no offset
        )

    # -- the schedule and the store ------------------------------------------------------------

    def schedule_at(self, sub_id: str, due_ms: int) -> None:
        self._schedule.due_at(sub_id, due_ms, now_ms=epoch_ms(self._clock.now()))

    def flush(self) -> None:
        """Apply the store writes staged this turn, in one transaction."""
        self._store.flush()

    def measure(self) -> None:
        metrics, store, schedule = self._metrics, self._store, self._schedule
        metrics.backlog_depth.set(schedule.depth)
        metrics.backlog_top.clear()
        for sub_id, count in schedule.deepest(TOP_BACKLOGS):
            metrics.backlog_top.labels(sub_id).set(count)
        now_ms = epoch_ms(self._clock.now())
        oldest = [store.oldest_created_ms(sub_id) for sub_id in schedule.backlogged()]
        known = [ms for ms in oldest if ms is not None]
        metrics.backlog_oldest_age.set((now_ms - min(known)) / 1000 if known else 0)
        for bucket, count in store.timers(now_ms).items():
            metrics.backlog_timers.labels(bucket).set(count)
