"""Outcomes of attempts against real receivers: retries through the tiers, the deadline,
dead letters, 410, Retry-After, the no-success window, unsendable commands, order, rate."""

from __future__ import annotations

import resource
import time

import pytest

from core.records import DeliveryAttempt
from hookline.app.receiver import (
    Answer,
    Behaviour,
    FailThenAnswer,
    Hang,
    HugeBody,
    Receiver,
    RedirectToSelf,
    Trickle,
)
from tests.integration.deliverer.conftest import Kit, Outputs, running
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration


def _by_delivery(attempts: list[DeliveryAttempt], delivery_id: str) -> list[DeliveryAttempt]:
    return sorted((a for a in attempts if a.delivery_id == delivery_id), key=lambda a: a.attempt)


async def test_500_then_200_is_delivered_on_the_next_attempt(kit: Kit, outputs: Outputs) -> None:
    async with Receiver(default=FailThenAnswer(failures=1)) as receiver:
        sub = kit.subscription(receiver.url("/flaky"))
        command = kit.command(sub)
        kit.send([command])
        async with running(kit.settings) as deliverer:
            await eventually_async(
                lambda: len(_by_delivery(outputs.attempts(), command.delivery_id)) >= 2,
                "len(_by_delivery(outputs.attempts(), command.delivery_id)) >= 2",
                timeout_s=30,
            )
        attempts = _by_delivery(outputs.attempts(), command.delivery_id)
        assert [(a.attempt, a.outcome, a.status_code) for a in attempts] == [
            (1, "retrying", 500),
            (2, "delivered", 200),
        ]
        assert attempts[0].error == "HTTP 500"
        assert attempts[0].next_attempt_at is not None
        assert receiver.ids() == [command.event_id, command.event_id], "same webhook-id"
        assert deliverer.metric("hookline_deliverer_attempts_total", {"outcome": "delivered"}) == 1


async def test_misbehaving_receivers_end_at_the_deadline_as_failures(
    kit: Kit, outputs: Outputs
) -> None:
    behaviours: dict[str, Behaviour] = {
        "/hang": Hang(),
        "/trickle": Trickle(interval_s=2.0),
        "/huge": HugeBody(size_bytes=100 * 1024 * 1024),
        "/redirect": RedirectToSelf(),
    }
    deadline_s = kit.settings.delivery_timeout_s
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with Receiver(behaviours=behaviours) as receiver:
        commands = {path: kit.command(kit.subscription(receiver.url(path))) for path in behaviours}
        kit.send(list(commands.values()))
        async with running(kit.settings):

            def first_attempts() -> dict[str, DeliveryAttempt]:
                found = {}
                for path, command in commands.items():
                    attempts = _by_delivery(outputs.attempts(), command.delivery_id)
                    if attempts:
                        found[path] = attempts[0]
                return found

            await eventually_async(
                lambda: len(first_attempts()) == 4, "len(first_attempts()) == 4", timeout_s=30
            )
            firsts = first_attempts()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kib) / 1024
    for path, attempt in firsts.items():
        assert attempt.outcome == "retrying", path
        assert attempt.duration_ms <= (deadline_s + 1.0) * 1000, path
    assert firsts["/hang"].status_code is None
    assert firsts["/hang"].error is not None
    assert firsts["/hang"].error.startswith("timeout")
    assert firsts["/trickle"].error is not None
    assert firsts["/trickle"].error.startswith("timeout")
    assert firsts["/trickle"].duration_ms >= (deadline_s - 0.5) * 1000
    assert firsts["/huge"].status_code == 500
    assert firsts["/huge"].response_excerpt is not None
    assert len(firsts["/huge"].response_excerpt) <= 1024
    assert firsts["/redirect"].status_code == 307
    assert "redirects are not followed" in (firsts["/redirect"].error or "")
    assert grown_mib < 64, f"memory grew {grown_mib:.0f} MiB: a body was buffered"


async def test_exhausted_schedule_lands_in_dead_letters_with_the_last_error(
    kit: Kit, outputs: Outputs
) -> None:
    async with Receiver(default=Answer(status=503, body=b"down")) as receiver:
        sub = kit.subscription(receiver.url("/down"))
        command = kit.command(sub)
        kit.send([command])
        async with running(kit.settings) as deliverer:
            await eventually_async(
                lambda: bool(outputs.dead_letters()), "outputs.dead_letters()", timeout_s=30
            )
            dead_metric = deliverer.metric(
                "hookline_deliverer_dead_letters_total", {"reason": "exhausted"}
            )
        [letter] = outputs.dead_letters()
        assert letter.command is not None
        assert letter.command.delivery_id == command.delivery_id
        assert letter.command.attempt == 3  # the first attempt and one per shortened delay
        assert letter.command.last_error == "HTTP 503"
        assert letter.error is not None
        assert "last: HTTP 503" in letter.error
        assert letter.subscription_id == sub.id
        assert letter.source_topic == kit.settings.topic("deliveries"), "where it was read first"
        outcomes = [a.outcome for a in _by_delivery(outputs.attempts(), command.delivery_id)]
        assert outcomes == ["retrying", "retrying", "dead"]
        assert receiver.ids() == [command.event_id] * 3
        assert dead_metric == 1


async def test_410_disables_the_subscription_and_publishes_the_event(
    kit: Kit, outputs: Outputs
) -> None:
    async with Receiver(default=Answer(status=410)) as receiver:
        sub = kit.subscription(receiver.url("/gone"))
        first = kit.command(sub)
        kit.send([first])
        async with running(kit.settings) as deliverer:
            await eventually_async(lambda: bool(outputs.events()), "outputs.events()", timeout_s=30)
            assert kit.table.wait_for(sub.id, version=2, timeout_s=10)
            later = kit.command(sub)
            kit.send([later])
            await eventually_async(
                lambda: bool(_by_delivery(outputs.attempts(), later.delivery_id)),
                "_by_delivery(outputs.attempts(), later.delivery_id)",
                timeout_s=30,
            )
            assert deliverer.metric("hookline_deliverer_disabled_subscriptions_total") == 1
    [event] = outputs.events()
    assert event.type == "subscription.disabled"
    assert event.subject.id == sub.id
    assert event.data["subscription_id"] == sub.id
    assert "410" in str(event.data["reason"])
    current = kit.table.get(sub.id)
    assert current is not None
    assert current.status == "disabled"
    assert current.version == 2
    assert current.disabled_reason == "the endpoint answered 410 Gone"
    assert current.disabled_at is not None
    assert current.disabled_at == current.updated_at
    [gone] = _by_delivery(outputs.attempts(), first.delivery_id)
    assert (gone.outcome, gone.status_code) == ("failed", 410)
    [skipped] = _by_delivery(outputs.attempts(), later.delivery_id)
    assert (skipped.outcome, skipped.error, skipped.status_code) == (
        "failed",
        "subscription disabled",
        None,
    )
    assert receiver.ids() == [first.event_id], "nothing is sent to a disabled subscription"


async def test_retry_after_is_honoured(kit: Kit, outputs: Outputs) -> None:
    busy = Answer(status=429, headers={"Retry-After": "2"})
    async with Receiver(default=busy) as receiver:
        command = kit.command(kit.subscription(receiver.url("/busy")))
        kit.send([command])
        async with running(kit.settings):
            await eventually_async(
                lambda: len(_by_delivery(outputs.attempts(), command.delivery_id)) >= 2,
                "len(_by_delivery(outputs.attempts(), command.delivery_id)) >= 2",
                timeout_s=30,
            )
        first, second = _by_delivery(outputs.attempts(), command.delivery_id)[:2]
    assert first.next_attempt_at is not None
    assert (first.next_attempt_at - first.at).total_seconds() >= 1.9
    assert (second.at - first.at).total_seconds() >= 1.9


async def test_no_success_for_the_window_disables(kit: Kit, outputs: Outputs) -> None:
    settings = kit.settings.with_changes(disable_after_s=0.5, retry_delays_s=(0.4, 0.4, 0.4))
    async with Receiver(default=Answer(status=500)) as receiver:
        sub = kit.subscription(receiver.url("/broken"))
        kit.send([kit.command(sub)])
        async with running(settings):
            await eventually_async(lambda: bool(outputs.events()), "outputs.events()", timeout_s=30)
    [event] = outputs.events()
    assert event.type == "subscription.disabled"
    assert event.data["reason"] == "no successful delivery for 0.5 seconds"
    assert kit.table.wait_for(sub.id, version=2, timeout_s=10)
    current = kit.table.get(sub.id)
    assert current is not None
    assert (current.status, current.disabled_reason) == ("disabled", event.data["reason"])
    assert current.disabled_at is not None


async def test_deleted_and_paused_subscriptions_are_not_sent(kit: Kit, outputs: Outputs) -> None:
    async with Receiver() as receiver:
        deleted = kit.subscription(receiver.url("/deleted"))
        paused = kit.subscription(receiver.url("/paused"), status="paused")
        kit.log.delete(deleted.id)
        assert kit.table.wait_for(deleted.id, version=None, timeout_s=10)
        gone, held = kit.command(deleted), kit.command(paused)
        kit.send([gone, held])
        async with running(kit.settings):
            await eventually_async(
                lambda: len(outputs.attempts()) >= 2, "len(outputs.attempts()) >= 2", timeout_s=30
            )
            await eventually_async(
                lambda: bool(outputs.dead_letters()), "outputs.dead_letters()", timeout_s=30
            )
        assert receiver.received == []
    [dropped] = _by_delivery(outputs.attempts(), gone.delivery_id)
    assert (dropped.outcome, dropped.error) == ("failed", "subscription deleted")
    [parked] = _by_delivery(outputs.attempts(), held.delivery_id)
    assert (parked.outcome, parked.error) == ("dead", "subscription paused")
    [letter] = outputs.dead_letters()
    assert letter.command is not None
    assert letter.command.delivery_id == held.delivery_id
    assert letter.reason == "subscription paused"


async def test_ordered_subscription_keeps_order_through_a_failure(
    kit: Kit, outputs: Outputs
) -> None:
    async with Receiver(behaviours={"/ordered": FailThenAnswer(failures=2)}) as receiver:
        sub = kit.subscription(receiver.url("/ordered"), ordered=True)
        commands = [kit.command(sub, data={"id": f"t{n}", "title": str(n)}) for n in range(5)]
        kit.send(commands)
        async with running(kit.settings):
            await eventually_async(
                lambda: len(receiver.received) >= 15, "len(receiver.received) >= 15", timeout_s=30
            )
    # each command fails twice in place, then succeeds, before the next one starts
    expected = [c.event_id for c in commands for _ in range(3)]
    assert receiver.ids() == expected
    first = _by_delivery(outputs.attempts(), commands[0].delivery_id)
    assert [a.outcome for a in first] == ["retrying", "retrying", "delivered"]


async def test_rate_limit_spaces_requests(kit: Kit) -> None:
    async with Receiver() as receiver:
        sub = kit.subscription(receiver.url("/slow"), rate_limit=5.0)
        kit.send([kit.command(sub) for _ in range(8)])
        async with running(kit.settings):
            await eventually_async(
                lambda: len(receiver.received) >= 8, "len(receiver.received) >= 8", timeout_s=30
            )
        times = sorted(r.received_at for r in receiver.received)
    assert times[-1] - times[0] >= 7 / 5.0 - 0.1, "8 requests at 5/s span at least 1.4 s"
    assert time.time() >= times[-1]
