"""The tests' one wait-until helper: what it returns, and what its failure says."""

from __future__ import annotations

import pytest

from tests.waiting import eventually, eventually_async


def test_eventually_returns_the_first_truthy_value() -> None:
    answers = iter([None, [], ["found"]])
    assert eventually(lambda: next(answers), "an answer", interval_s=0) == ["found"]


def test_eventually_fails_naming_what_it_awaited_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"the job to end: not within 0 s \(last seen: 0\)"):
        eventually(lambda: 0, "the job to end", timeout_s=0)


async def test_eventually_async_awaits_a_coroutine_check() -> None:
    calls: list[int] = []

    async def check() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    assert await eventually_async(check, "three calls", interval_s=0) == 3


async def test_eventually_async_fails_naming_what_it_awaited() -> None:
    with pytest.raises(AssertionError, match="the receiver: not within 0 s"):
        await eventually_async(lambda: False, "the receiver", timeout_s=0)
