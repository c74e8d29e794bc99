"""A `deliveries` partition's backlog, restored into the local store when it is assigned and
forgotten when it is revoked.

The consumer keeps an assigned partition paused until its changelog partition has been read
into the store (on a worker thread), so its commands always land behind the restored
backlog. Until then the store does not hold that partition: `holds` is what the backlog's
writers ask before touching its rows (the changelog record is what counts meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Sequence

from core.backlog_schedule import BacklogSchedule
from deliverer.backlog import BacklogStore
from deliverer.kafka_io import KafkaIO
from deliverer.lanes import Spawn
from deliverer.metrics import DelivererMetrics
from deliverer.ports import RestoreBacklog

log = logging.getLogger(__name__)


class Restorer:
    """The restores running, one per partition (a newer assignment cancels an older one)."""

    def __init__(
        self,
        *,
        io: KafkaIO,
        store: BacklogStore,
        schedule: BacklogSchedule,
        restore: RestoreBacklog,
        metrics: DelivererMetrics,
        spawn: Spawn,
    ) -> None:
        self._io = io
        self._store = store
        self._schedule = schedule
        self._restore_backlog = restore
        self._metrics = metrics
        self._spawn = spawn
        self._restoring: dict[int, threading.Event] = {}

    def holds(self, partition: int) -> bool:
        """Whether the store holds the partition's backlog: owned, and restored."""
        return self._io.owns(partition) and partition not in self._restoring

    def assigned(self, partitions: Sequence[int]) -> None:
        for partition in partitions:
            cancel = threading.Event()
            previous = self._restoring.get(partition)
            if previous is not None:
                previous.set()
            self._restoring[partition] = cancel
            self._spawn(self._restore(partition, cancel))

    async def _restore(self, partition: int, cancel: threading.Event) -> None:
        restored = await asyncio.to_thread(
            self._restore_backlog,
            self._store.path,
            self._io.backlog,
            partition,
            cancelled=cancel,
        )
        if self._restoring.get(partition) is cancel:
            del self._restoring[partition]
        if restored is None or cancel.is_set() or not self._io.owns(partition):
            if not self._io.owns(partition):
                self._store.drop_partitions([partition])
            return
        for sub_id, count in restored.entries.items():
            self._schedule.added(sub_id, count)
            self._schedule.wake(sub_id)
        self._metrics.restore_seconds.observe(restored.seconds)
        if restored.records:
            log.info(
                "deliverer: restored the backlog of partition %d: %d commands from %d records"
                " in %.1f s",
                partition,
                restored.entries.total(),
                restored.records,
                restored.seconds,
            )
        self._io.restored(partition)

    def revoked(self, partitions: Iterable[int]) -> None:
        """Cancel their restores and forget their rows (the new owner restores them)."""
        gone = set(partitions)
        for partition in gone:
            cancel = self._restoring.pop(partition, None)
            if cancel is not None:
                cancel.set()
        self._schedule.forget(self._store.drop_partitions(gone))
