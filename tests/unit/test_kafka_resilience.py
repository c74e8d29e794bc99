"""The small defences against a recovering broker: transient-error retries, the watchdog
around transactional calls that librdkafka can wedge, the repeat filter on its logs, and the
client settings that bound the wait on a hung broker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from hookline.runtime.consumer_lag import ConsumerLag
from hookline.runtime.kafka import RepeatFilter, consumer_config, is_transient, retry_transient
from hookline.runtime.kafka_properties import parse_client_properties
from hookline.runtime.settings import Settings
from router.bootstrap import kafka_clients
from router.errors import ProducerWedged
from router.watchdog import abandon, abandoned, with_deadline


def _raising(code: int, times: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise KafkaException(KafkaError(code))
        return "answer"

    return calls, call


def test_transient_errors_are_retried_until_the_call_succeeds() -> None:
    calls, call = _raising(KafkaError.NOT_LEADER_FOR_PARTITION, times=2)
    assert retry_transient(call, what="test", patience_s=10) == "answer"
    assert len(calls) == 3


def test_a_permanent_error_is_raised_at_once() -> None:
    calls, call = _raising(KafkaError.TOPIC_AUTHORIZATION_FAILED, times=5)
    with pytest.raises(KafkaException):
        retry_transient(call, what="test", patience_s=10)
    assert len(calls) == 1


def test_a_transient_error_past_the_patience_is_raised() -> None:
    calls, call = _raising(KafkaError._TRANSPORT, times=1_000)
    with pytest.raises(KafkaException):
        retry_transient(call, what="test", patience_s=0.3)
    assert 1 < len(calls) < 1_000


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        (KafkaError._TRANSPORT, True),
        (KafkaError.NOT_LEADER_FOR_PARTITION, True),
        (KafkaError.COORDINATOR_NOT_AVAILABLE, True),
        (KafkaError._TIMED_OUT, True),
        (KafkaError._TIMED_OUT_QUEUE, True),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, False),
        (KafkaError.INVALID_CONFIG, False),
    ],
)
def test_is_transient(code: int, transient: bool) -> None:
    assert is_transient(KafkaError(code)) is transient


def test_a_fatal_error_is_never_transient() -> None:
    assert not is_transient(KafkaError(KafkaError._TRANSPORT, fatal=True))


def test_the_watchdog_returns_what_the_call_did() -> None:
    done: list[int] = []
    with_deadline(lambda: done.append(1), 5.0, "tx")
    assert done == [1]

    def fails() -> None:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))

    with pytest.raises(KafkaException):
        with_deadline(fails, 5.0, "tx")


def test_the_watchdog_gives_up_on_a_wedged_call() -> None:
    release = threading.Event()
    try:
        with pytest.raises(ProducerWedged) as raised:
            with_deadline(lambda: release.wait(30) and None, 0.2, "the-tx-id")
        assert raised.value.transactional_id == "the-tx-id"
        assert "0.2 s" in str(raised.value)
    finally:
        release.set()


def test_an_abandoned_client_is_kept_and_closed_aside() -> None:
    closed = threading.Event()
    before = abandoned()
    abandon(object(), closed.set, what="thing")
    assert closed.wait(5)
    assert abandoned() == before + 1


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("librdkafka", logging.ERROR, __file__, 1, message, None, None)


def test_the_repeat_filter_holds_repeats_and_counts_them() -> None:
    clock = [0.0]
    repeat = RepeatFilter(every_s=10.0, clock=lambda: clock[0])
    assert repeat.filter(_record("Connect failed (after 0ms in state CONNECT)"))
    for ms in range(1, 6):
        clock[0] += 1.0
        assert not repeat.filter(_record(f"Connect failed (after {ms}ms in state CONNECT)"))
    assert repeat.filter(_record("another line"))
    clock[0] += 10.0
    again = _record("Connect failed (after 9ms in state CONNECT)")
    assert repeat.filter(again)
    assert again.getMessage().endswith("(and 5 more like it)")


def test_a_consumer_finds_a_coordinator_lost_with_its_broker_within_its_session() -> None:
    """A hung coordinator is given up on after a request timeout and a connection set-up
    timeout, then looked up again; the session must outlast that and one heartbeat, or the
    member loses its partitions and waits out its old membership on rejoining."""
    config = consumer_config(
        Settings.load(environ={"HOOKLINE_KAFKA_BOOTSTRAP": "b:9092"}), group_id="g", client_id="c"
    )
    found_again_ms = (
        config["socket.timeout.ms"]
        + config["socket.connection.setup.timeout.ms"]
        + config["heartbeat.interval.ms"]
    )
    assert found_again_ms < config["session.timeout.ms"]


def test_the_router_consumer_is_a_dynamic_member_and_its_producer_keeps_its_id() -> None:
    """A static member is fenced by its own rejoin when its coordinator moves (fatal)."""
    settings = Settings.load(environ={"HOOKLINE_KAFKA_BOOTSTRAP": "b:9092"})
    clients = kafka_clients(
        settings,
        client_id="router-a",
        transactional_id="hookline.router.router-a",
        lag=ConsumerLag.of(CollectorRegistry()),
    )
    assert "group.instance.id" not in clients.consumer_config
    assert clients.consumer_config["group.id"] == "hookline.router"
    assert clients.producer_config["transactional.id"] == "hookline.router.router-a"


def test_only_a_batched_consumer_waits_for_more_than_its_first_record() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:9092")
    eager = consumer_config(settings, group_id="g", client_id="c")
    batched = consumer_config(settings, group_id="g", client_id="c", batched=True)
    assert "fetch.min.bytes" not in eager
    assert batched["fetch.min.bytes"] == 64 * 1024
    assert batched["fetch.wait.max.ms"] == 100
    overridden = consumer_config(
        settings.with_changes(kafka_config=parse_client_properties("fetch.wait.max.ms=20")),
        group_id="g",
        client_id="c",
        batched=True,
    )
    assert overridden["fetch.wait.max.ms"] == "20"  # HOOKLINE_KAFKA_CONFIG tunes it still
