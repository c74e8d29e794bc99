"""Waiting, without a thread per request, until the API's subscriptions table has read back
a write: the table's change listener wakes the requests waiting for that subscription."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from core.records import Subscription
from hookline.runtime.subscription_table import SubscriptionTable, holds_version


@dataclass(frozen=True, slots=True)
class _Waiter:
    version: int | None
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ReadBack:
    """Pass `on_change` to the SubscriptionTable, then `await wait(...)` after each write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[_Waiter]] = {}

    def on_change(self, subscription_id: str, row: Subscription | None) -> None:
        """Called on the table's thread after each change is visible."""
        with self._lock:
            waiters = self._waiters.get(subscription_id, [])
            woken = [w for w in waiters if holds_version(row, w.version)]
        for waiter in woken:
            waiter.loop.call_soon_threadsafe(_resolve, waiter.future)

    async def wait(
        self,
        table: SubscriptionTable,
        subscription_id: str,
        *,
        version: int | None,
        timeout_s: float,
    ) -> bool:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(version, loop.create_future(), loop)
        with self._lock:
            self._waiters.setdefault(subscription_id, []).append(waiter)
        try:
            if holds_version(table.get(subscription_id), version):
                return True
            try:
                await asyncio.wait_for(waiter.future, timeout_s)
            except TimeoutError:
                return False
            return True
        finally:
            with self._lock:
                waiters = self._waiters.get(subscription_id, [])
                waiters.remove(waiter)
                if not waiters:
                    self._waiters.pop(subscription_id, None)
