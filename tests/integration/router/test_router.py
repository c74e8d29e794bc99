"""The router on the real broker: the expected commands and nothing else, live subscription
changes, dead letters for poison records, and Prometheus metrics."""

from __future__ import annotations

import os
from collections.abc import Callable

import orjson
import pytest
from prometheus_client import generate_latest

from core.ids import delivery_id
from core.records import DomainEvent
from hookline.runtime.codecs import CodecRuntime
from hookline.runtime.settings import Settings
from hookline.runtime.subscription_log import SubscriptionLog
from tests.factories import subscription

from .conftest import (
    CommittedReader,
    RunningRouter,
    produce_events,
    produce_raw,
    task_event,
)

pytestmark = pytest.mark.integration

Rule = Callable[[DomainEvent], bool]


def _expected(events: list[DomainEvent], rules: dict[str, Rule]) -> set[tuple[str, str]]:
    return {(e.id, sub_id) for e in events for sub_id, rule in rules.items() if rule(e)}


def test_events_times_subscriptions_give_exactly_the_expected_commands(
    settings: Settings,
    runtime: CodecRuntime,
    subscriptions: SubscriptionLog,
    commands_reader: CommittedReader,
    running_router: RunningRouter,
) -> None:
    for sub in [
        subscription("s-exact", "task.created"),
        subscription("s-noun", "task.*"),
        subscription("s-all", "*"),
        subscription("s-filter", "task.*", filter={"project_id": "p-1"}),
        subscription("s-null", "task.created", filter={"assignee_id": None}),
        subscription("s-multi", "meeting.ended", "task.assigned", "task.*"),
        subscription("s-globex", "*", tenant="globex"),
        subscription("s-initech", "*", tenant="initech"),
        subscription("s-paused", "*", status="paused"),
        subscription("s-disabled", "task.*", status="disabled"),
        subscription("s-deleted", "*"),
    ]:
        subscriptions.put(sub)
    subscriptions.delete("s-deleted")
    types = ["task.created", "task.assigned", "meeting.ended"]
    events = [
        task_event(
            n,
            event_type=types[n % 3],
            tenant="globex" if n % 4 == 3 else "acme",
            project=f"p-{n % 2}",
            assignee=None if n % 5 else "u-7",
        )
        for n in range(60)
    ]
    acme = "acme"
    rules: dict[str, Rule] = {
        "s-exact": lambda e: e.tenant == acme and e.type == "task.created",
        "s-noun": lambda e: e.tenant == acme and e.type.startswith("task."),
        "s-all": lambda e: e.tenant == acme,
        "s-filter": lambda e: (
            e.tenant == acme and e.type.startswith("task.") and e.data.get("project_id") == "p-1"
        ),
        "s-null": lambda e: (
            e.tenant == acme and e.type == "task.created" and e.data["assignee_id"] is None
        ),
        "s-multi": lambda e: e.tenant == acme and e.type != "webhook.ping",
        "s-globex": lambda e: e.tenant == "globex",
    }
    expected = _expected(events, rules)

    running_router.start()
    produce_events(settings, runtime, events)
    running_router.wait_routed(len(events))
    commands_reader.drain()

    commands = commands_reader.commands(runtime)
    got = [(c.event_id, c.subscription_id) for c in commands]
    assert len(got) == len(set(got)), "a command was emitted twice"
    assert set(got) == expected
    by_id = {e.id: e for e in events}
    for message, command in zip(commands_reader.messages, commands, strict=True):
        assert message.key() == command.subscription_id.encode()
        assert command.delivery_id == delivery_id(command.event_id, command.subscription_id)
        assert command.attempt == 0
        assert command.origin == "route"
        event = by_id[command.event_id]
        assert command.event_type == event.type
        body = orjson.loads(command.payload)
        assert body["type"] == event.type
        assert body["tenant"] == event.tenant
        assert body["subject"] == {"type": event.subject.type, "id": event.subject.id}
        assert body["actor"] == {"type": "user", "id": "u-9"}
        assert {k: body["data"][k] for k in event.data} == dict(event.data)  # + defaults
    assert running_router.metric("hookline_router_commands_total") == len(expected)
    metrics = generate_latest(running_router.registry).decode()
    for name in ("events_total", "commands_total", "lag_events", "dead_letters_total"):
        assert f"hookline_router_{name}" in metrics


def test_a_subscription_created_then_an_event_is_routed_and_a_deleted_one_is_not(
    settings: Settings,
    runtime: CodecRuntime,
    subscriptions: SubscriptionLog,
    commands_reader: CommittedReader,
    running_router: RunningRouter,
) -> None:
    running_router.start()
    subscriptions.put(subscription("s-live", "task.*"))
    first = task_event(1)
    produce_events(settings, runtime, [first])  # at once: no waiting for the router's table
    running_router.wait_routed(1)
    commands_reader.drain()
    assert [(c.event_id, c.subscription_id) for c in commands_reader.commands(runtime)] == [
        (first.id, "s-live")
    ]

    subscriptions.delete("s-live")
    second = task_event(2)
    produce_events(settings, runtime, [second])
    running_router.wait_routed(2)
    commands_reader.drain()
    assert [c.event_id for c in commands_reader.commands(runtime)] == [first.id]


@pytest.mark.parametrize("poison", ["garbage", "unknown-schema"])
def test_a_poison_record_is_dead_lettered_and_routing_continues(
    settings: Settings,
    runtime: CodecRuntime,
    subscriptions: SubscriptionLog,
    commands_reader: CommittedReader,
    *,
    running_router: RunningRouter,
    poison: str,
) -> None:
    subscriptions.put(subscription("s-all", "*"))
    events = [task_event(n) for n in range(999)]
    records = [(e.subject.id, runtime.codec.encode_event(e)) for e in events]
    bad = {
        "garbage": b"not avro at all",
        # a well-formed header naming a writer schema no registry holds
        "unknown-schema": b"\xc3\x01" + os.urandom(8) + b"\x00" * 16,
    }[poison]
    records.insert(500, ("t-poison", bad))
    running_router.start()
    placed = produce_raw(settings, records)
    running_router.wait_routed(len(records))
    commands_reader.drain()

    assert sorted(c.event_id for c in commands_reader.commands(runtime)) == sorted(
        e.id for e in events
    )
    letters_reader = CommittedReader(settings, settings.topic("dead-letters"))
    try:
        letters_reader.drain()
        [letter] = letters_reader.dead_letters(runtime)
        assert letters_reader.messages[0].key() == b"t-poison"
    finally:
        letters_reader.close()
    reason = "undecodable" if poison == "garbage" else "unknown schema"
    assert letter.reason == reason
    assert letter.error is not None
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        settings.topic("events"),
        *placed[500],
    )
    assert letter.raw_value == bad
    assert letter.command is None
    assert running_router.metric("hookline_router_dead_letters_total", {"reason": reason}) == 1
    assert running_router.metric("hookline_router_commands_total") == 999
