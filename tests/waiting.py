"""The one way a test waits: poll a condition until it holds or a deadline passes, then fail
saying what was awaited. A test never sleeps for a fixed time where it can poll.

`eventually` blocks the calling thread; `eventually_async` yields to the event loop between
polls and also takes a coroutine function (a check that reads over HTTP).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar, overload

T = TypeVar("T")

TIMEOUT_S: Final = 30.0
INTERVAL_S: Final = 0.05


def _late(what: str, timeout_s: float, last: object) -> AssertionError:
    return AssertionError(f"{what}: not within {timeout_s} s (last seen: {last!r})")


def _nothing() -> object:
    return None


def eventually(
    condition: Callable[[], T | None],
    what: str,
    *,
    timeout_s: float = TIMEOUT_S,
    interval_s: float = INTERVAL_S,
    detail: Callable[[], object] = _nothing,
) -> T:
    """The first truthy value of `condition()`, polled every `interval_s`; AssertionError
    naming `what` (and `detail()`, the state worth seeing) once `timeout_s` has passed
    without one."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _late(what, timeout_s, result if detail is _nothing else detail())
        time.sleep(interval_s)


@overload
async def eventually_async(
    condition: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    timeout_s: float = ...,
    interval_s: float = ...,
) -> T: ...


@overload
async def eventually_async(
    condition: Callable[[], T | None],
    what: str,
    *,
    timeout_s: float = ...,
    interval_s: float = ...,
) -> T: ...


async def eventually_async(
    condition: Callable[[], object],
    what: str,
    *,
    timeout_s: float = TIMEOUT_S,
    interval_s: float = INTERVAL_S,
) -> object:
    """`eventually` for a test on the event loop: sleeps without blocking it, and awaits the
    condition's value when it is awaitable."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise _late(what, timeout_s, result)
        await asyncio.sleep(interval_s)
