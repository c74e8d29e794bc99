"""The projector's shell (`Projector.project`) driven through in-memory fakes of its ports:
each batch is stored with the offsets after it, only once its dead letters are acknowledged,
and a batch whose transaction was lost is read again from the offsets the database holds.
What the SQL makes of the rows (idempotent upserts) is tested on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from api.model.errors import ProjectionError
from api.projector.ports import Ports
from api.projector.service import Projector
from core.ids import delivery_id
from core.records import DeliveryCommand
from tests.fakes import (
    TP,
    FakeDatabase,
    FakeMessage,
    FakeProducer,
    FakeTransactionalKafka,
    undialled_settings,
)
from tests.unit.test_records_avro import make_codec

T0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


class Shell:
    """One projector over fakes, one partition of each topic it reads."""

    def __init__(self) -> None:
        self.settings = undialled_settings()
        self.deliveries = self.settings.topic("deliveries")
        self.dead_letters = self.settings.topic("dead-letters")
        self.codec = make_codec()
        self.kafka = FakeTransactionalKafka(
            {self.deliveries: 1, self.settings.topic("attempts"): 1, self.dead_letters: 1}
        )
        self.producer = FakeProducer()
        self.database = FakeDatabase()
        self.stopping = threading.Event()
        self.projector = Projector(self.settings, CollectorRegistry())

    def command(self) -> str:
        """Append a delivery command to `deliveries`; its delivery id."""
        event_id = str(uuid.uuid4())
        command = DeliveryCommand(
            delivery_id=delivery_id(event_id, "sub-1"),
            event_id=event_id,
            event_type="task.created",
            tenant="acme",
            subscription_id="sub-1",
            occurred_at=T0,
            payload=b'{"type":"task.created"}',
            attempt=0,
            created_at=T0,
            not_before=None,
            origin="route",
            job_id=None,
            last_error=None,
        )
        value = self.codec.encode_delivery_command(command)
        self.kafka.add(self.deliveries, 0, key=b"sub-1", value=value)
        return command.delivery_id

    def project_until_idle(self) -> None:
        """Project until a consume finds nothing left to read."""

        def stop_when_idle(messages: list[FakeMessage]) -> None:
            if not messages:
                self.stopping.set()

        self.kafka.on_consume = stop_when_idle
        ports = Ports(
            codec=self.codec,
            consumer=self.kafka.consumer(),
            producer=self.producer,
            open_history=self.database.open,
        )
        self.projector.project(ports, self.stopping)

    def stored(self) -> list[str]:
        return [u.delivery_id for batch in self.database.applied for u in batch.upserts]

    def offsets(self) -> dict[TP, int]:
        return self.database.offsets


def test_a_batch_is_stored_with_the_offsets_after_it() -> None:
    shell = Shell()
    sent = [shell.command(), shell.command()]

    shell.project_until_idle()

    [batch] = shell.database.applied
    assert [u.delivery_id for u in batch.upserts] == sent
    assert [(o.topic, o.partition, o.next_offset) for o in batch.offsets] == [
        (shell.deliveries, 0, 2)
    ]
    assert all(connection.closed for connection in shell.database.connections)


def test_partitions_start_at_the_offsets_the_database_holds_not_the_groups() -> None:
    shell = Shell()
    shell.command()
    shell.command()
    last = shell.command()
    shell.database.offsets[(shell.deliveries, 0)] = 2
    shell.kafka.committed[(shell.deliveries, 0)] = 0  # never read: Kafka's offsets are unused

    shell.project_until_idle()

    assert shell.stored() == [last]
    assert shell.offsets() == {(shell.deliveries, 0): 3}


def test_a_batch_whose_connection_was_lost_is_read_again_from_the_stored_offsets() -> None:
    shell = Shell()
    shell.command()
    again = [shell.command(), shell.command()]
    shell.database.offsets[(shell.deliveries, 0)] = 1
    shell.database.fail_next_apply = True

    shell.project_until_idle()

    assert shell.stored() == again, "the lost batch is stored once, after reconnecting"
    assert shell.offsets() == {(shell.deliveries, 0): 3}
    assert [connection.closed for connection in shell.database.connections] == [True, True]


def test_an_undecodable_record_is_dead_lettered_before_the_offset_past_it_is_stored() -> None:
    shell = Shell()
    shell.kafka.add(shell.deliveries, 0, key=b"k", value=b"not avro")
    sent = shell.command()

    shell.project_until_idle()

    [letter] = shell.producer.to(shell.dead_letters)
    assert shell.codec.decode_dead_letter(letter.value or b"").source_offset == 0
    assert shell.stored() == [sent]
    assert shell.offsets() == {(shell.deliveries, 0): 2}


def test_a_refused_dead_letter_stops_the_projector_before_the_offset_past_it() -> None:
    shell = Shell()
    shell.command()
    shell.kafka.add(shell.deliveries, 0, key=b"k", value=b"not avro")
    shell.producer.refuse = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large")

    with pytest.raises(ProjectionError, match="dead letter not written"):
        shell.project_until_idle()

    assert shell.database.applied == []
    assert shell.offsets() == {}
