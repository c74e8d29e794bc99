"""The acknowledged producer's rules against a fake librdkafka producer: a full local queue
is waited out with polls up to a deadline, a refusal or a missing acknowledgement is a
typed error, and each step sees only its own refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from hookline.runtime.errors import KafkaAuthenticationFailed, ProduceFailed, ProduceTimeout
from hookline.runtime.producing import Acks, PolledProducer, produce_within

OnDelivery = Callable[[KafkaError | None, Any], None]


class FakeProducer:
    """Refuses `produce` with BufferError `full` times, then queues; each `poll` advances the
    fake clock by its timeout; `flush` acknowledges what is queued, refusing `refuse`d topics,
    unless `silent` (a broker that never answers)."""

    def __init__(self, *, full: int = 0, refuse: frozenset[str] = frozenset()) -> None:
        self.full = full
        self.refuse = refuse
        self.silent = False
        self.now = 0.0
        self.polls = 0
        self.queued: list[tuple[str, OnDelivery | None]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        self.queued.append((topic, kwargs.get("on_delivery")))

    def poll(self, timeout_s: float) -> int:
        self.polls += 1
        self.now += timeout_s
        return 0

    def flush(self, _timeout_s: float) -> int:
        if self.silent:
            return len(self.queued)
        for topic, on_delivery in self.queued:
            if on_delivery is not None:
                error = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if topic in self.refuse else None
                on_delivery(error, None)
        self.queued.clear()
        return 0


def _produce(fake: FakeProducer, *, timeout_s: float) -> None:
    produce_within(
        cast(Producer, fake), "t", key=b"k", value=b"v", timeout_s=timeout_s, clock=lambda: fake.now
    )


def test_a_full_queue_is_polled_until_it_has_room() -> None:
    fake = FakeProducer(full=3)
    _produce(fake, timeout_s=10)
    assert fake.polls == 3
    assert [topic for topic, _ in fake.queued] == ["t"]


def test_a_queue_that_stays_full_is_a_timeout_not_a_hang() -> None:
    fake = FakeProducer(full=10**9)
    with pytest.raises(ProduceTimeout, match="room in the local queue not within 1 s") as caught:
        _produce(fake, timeout_s=1)
    assert caught.value.topic == "t"
    assert fake.queued == []


def test_a_client_error_passes_unchanged_for_a_transactional_caller() -> None:
    class Fenced(FakeProducer):
        def produce(self, topic: str, **kwargs: Any) -> None:
            raise KafkaException(KafkaError(KafkaError._FENCED))

    with pytest.raises(KafkaException):
        _produce(Fenced(), timeout_s=1)


def test_acks_wait_for_every_record_of_the_step() -> None:
    fake = FakeProducer(full=2)
    acks = Acks(cast(Producer, fake))
    acks.produce("a", key="k", value=b"1")
    acks.produce("b", key="k", value=b"2")
    acks.wait()
    assert fake.queued == []


def test_a_refused_record_fails_the_step_naming_its_topic() -> None:
    fake = FakeProducer(refuse=frozenset({"b"}))
    acks = Acks(cast(Producer, fake))
    acks.produce("a", key="k", value=b"1")
    acks.produce("b", key="k", value=b"2")
    with pytest.raises(ProduceFailed) as caught:
        acks.wait()
    assert caught.value.topic == "b"
    assert not isinstance(caught.value, ProduceTimeout)


def test_a_missing_acknowledgement_is_a_timeout() -> None:
    fake = FakeProducer()
    fake.silent = True
    acks = Acks(cast(Producer, fake), timeout_s=5)
    acks.produce("a", key="k", value=b"1")
    with pytest.raises(ProduceTimeout, match="1 acknowledgements not within 5 s"):
        acks.wait()


def test_two_steps_on_one_producer_see_only_their_own_refusals() -> None:
    fake = FakeProducer(refuse=frozenset({"refused"}))
    mine, theirs = Acks(cast(Producer, fake)), Acks(cast(Producer, fake))
    theirs.produce("refused", key=None, value=b"x")
    mine.produce("fine", key=None, value=b"y")
    mine.wait()
    with pytest.raises(ProduceFailed):
        theirs.wait()


def test_a_record_the_client_refuses_at_once_is_a_produce_failure() -> None:
    class TooLarge(FakeProducer):
        def produce(self, topic: str, **kwargs: Any) -> None:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))

    acks = Acks(cast(Producer, TooLarge()))
    with pytest.raises(ProduceFailed):
        acks.produce("a", key=None, value=b"x")
    acks.wait()  # nothing is left pending by the refused record


async def test_an_awaited_record_never_acknowledged_times_out() -> None:
    fake = FakeProducer()
    fake.silent = True
    polled = PolledProducer(cast(Producer, fake), name="unit")
    try:
        with pytest.raises(ProduceTimeout, match="the acknowledgement"):
            await polled.send("t", key=None, value=b"x", timeout_s=0.01)
    finally:
        polled.close(0)


async def test_an_awaited_record_is_settled_on_the_loop_by_the_poll_thread() -> None:
    class AcksOnPoll(FakeProducer):
        def poll(self, timeout_s: float) -> int:
            self.flush(0)
            return 0

    polled = PolledProducer(cast(Producer, AcksOnPoll(refuse=frozenset({"no"}))), name="unit")
    try:
        await asyncio.wait_for(polled.send("yes", key=None, value=b"x"), 30)
        with pytest.raises(ProduceFailed):
            await asyncio.wait_for(polled.send("no", key=None, value=b"x"), 30)
        assert polled.submit("yes", key=None, value=b"x").result(30) is None
    finally:
        polled.close(0)


async def test_a_refused_login_does_not_stop_the_poll_thread() -> None:
    """Regression: the error callback's KafkaAuthenticationFailed, raised from `poll`, ended
    the poll thread, so no later record was ever acknowledged."""

    class RefusedOnce(FakeProducer):
        def poll(self, timeout_s: float) -> int:
            if self.polls == 0:
                self.polls += 1
                raise KafkaAuthenticationFailed("HOOKLINE_KAFKA_SASL_PASSWORD", "refused")
            self.flush(0)
            return 0

    polled = PolledProducer(cast(Producer, RefusedOnce()), name="unit")
    try:
        await asyncio.wait_for(polled.send("t", key=None, value=b"x"), 30)
    finally:
        polled.close(0)
