"""Two routers in one group: the second joins mid-stream, partitions move between them, and a
read_committed reader still finds every command exactly once."""

from __future__ import annotations

from collections import Counter

import pytest

from core.ids import delivery_id
from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from tests.factories import subscription
from tests.waiting import eventually

from .conftest import CommittedReader, RunningRouter, produce_events, task_event

pytestmark = pytest.mark.integration


def test_a_router_joining_mid_stream_changes_nothing_in_the_output(
    settings: Settings,
    runtime: CodecRuntime,
    subscriptions: SubscriptionLog,
    commands_reader: CommittedReader,
) -> None:
    subscriptions.put(subscription("s-all", "*"))
    events = [task_event(n) for n in range(3000)]
    produce_events(settings, runtime, events)
    first = RunningRouter(settings, batch_max_events=100)
    second = RunningRouter(settings, batch_max_events=100)
    first.start()
    try:
        first.wait_routed(500)
        second.start()
        # keep events coming until the second router has joined and routed some of them

        def second_has_work() -> bool:
            if second.metric("hookline_router_events_total") > 0:
                return True
            more = [task_event(len(events) + n) for n in range(200)]
            produce_events(settings, runtime, more)
            events.extend(more)
            return False

        eventually(second_has_work, "the second router gets work", timeout_s=60, interval_s=0.2)
        commands_reader.wait_for(
            lambda: len(commands_reader.messages) >= len(events),
            "a command for every event",
            timeout_s=120,
        )
    finally:
        second.stop()
        first.stop()
    commands_reader.drain()
    counts = Counter(c.delivery_id for c in commands_reader.commands(runtime))
    assert max(counts.values()) == 1
    assert set(counts) == {delivery_id(e.id, "s-all") for e in events}
    assert first.metric("hookline_router_events_total") + second.metric(
        "hookline_router_events_total"
    ) == len(events)
