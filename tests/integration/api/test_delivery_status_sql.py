"""The delivery-status rule where it runs: hypothesis drives the projector's own upserts
(`from_command`, `from_attempt`, `from_dead_letter`, `apply_batch`) against PostgreSQL with
records in any order, repeated (as Kafka redelivers them), and split into any batches, and
each row must equal what folding `core.delivery_status` over the same records says."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.model.db import connect
from api.projector.projection import (
    AttemptInsert,
    DeliveryUpsert,
    apply_batch,
    from_attempt,
    from_command,
    from_dead_letter,
)
from core.delivery_status import Proposal, fold, status_key, status_of_outcome
from core.records import AttemptOutcome, DeadLetter, DeliveryAttempt, DeliveryCommand
from hookline.runtime.settings import Settings
from tests.conftest import Services
from tests.integration.api.conftest import drop_schema, make_settings

pytestmark = pytest.mark.integration

T0: Final = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)
SUBSCRIPTION: Final = "sub-status"
DELIVERIES: Final = ("d-one", "d-two")
OUTCOMES: Final[tuple[AttemptOutcome, ...]] = ("delivered", "retrying", "dead", "failed")
ERRORS: Final = (
    None,
    "HTTP 500",
    "gave up after 3 attempts; last: HTTP 500",
    "subscription paused",
)

Record = DeliveryCommand | DeliveryAttempt | DeadLetter

# few distinct times, so equal times (ties of the status key) are common
times = st.integers(min_value=0, max_value=3).map(lambda s: T0 + timedelta(seconds=s))


@pytest.fixture(scope="module")
def conn(services: Services) -> Iterator[psycopg.Connection[object]]:
    """One schema for the whole module; each example empties its tables."""
    own: Settings = make_settings(services)
    connection = connect(own)
    yield connection
    connection.close()
    drop_schema(own)


def _command(delivery: str, *, created_at: datetime, last_error: str | None) -> DeliveryCommand:
    return DeliveryCommand(
        delivery_id=delivery,
        event_id=f"event-{delivery}",
        event_type="task.created",
        tenant="acme",
        subscription_id=SUBSCRIPTION,
        occurred_at=T0 - timedelta(minutes=1),
        payload=f'{{"delivery":"{delivery}"}}'.encode(),  # the same event, so the same body
        created_at=created_at,
        origin="route" if last_error is None else "recover",
        last_error=last_error,
    )


@st.composite
def commands(draw: st.DrawFn, delivery: str) -> DeliveryCommand:
    return _command(delivery, created_at=draw(times), last_error=draw(st.sampled_from(ERRORS)))


@st.composite
def attempts(draw: st.DrawFn, delivery: str) -> DeliveryAttempt:
    outcome = draw(st.sampled_from(OUTCOMES))
    at = draw(times)
    return DeliveryAttempt(
        delivery_id=delivery,
        event_id=f"event-{delivery}",
        event_type="task.created",
        subscription_id=SUBSCRIPTION,
        tenant="acme",
        attempt=draw(st.integers(min_value=1, max_value=3)),
        at=at,
        status_code=200 if outcome == "delivered" else 500,
        duration_ms=5,
        error=None if outcome == "delivered" else draw(st.sampled_from(ERRORS)),
        response_excerpt=None,
        outcome=outcome,
        next_attempt_at=(
            at + timedelta(seconds=draw(st.integers(min_value=1, max_value=2)))
            if outcome == "retrying"
            else None
        ),
    )


@st.composite
def letters(draw: st.DrawFn, delivery: str) -> DeadLetter:
    tried = draw(commands(delivery))
    return DeadLetter(
        id=str(uuid.UUID(int=draw(st.integers(min_value=0, max_value=3)))),
        reason="exhausted",
        at=draw(times),
        subscription_id=SUBSCRIPTION,
        command=tried,
        source_topic="t.deliveries",
        source_partition=0,
        source_offset=draw(st.integers(min_value=0, max_value=9)),
        raw_value=None,
        error=draw(st.sampled_from(ERRORS[1:])),
    )


UNDECODABLE: Final = DeadLetter(
    id="undecodable",
    reason="undecodable",
    at=T0,
    subscription_id=None,
    command=None,
    source_topic="t.attempts",
    source_partition=0,
    source_offset=3,
    raw_value=b"\x00",
    error="bad bytes",
)


def records_of(delivery: str) -> st.SearchStrategy[Record]:
    return st.one_of(commands(delivery), attempts(delivery), letters(delivery))


@dataclass(frozen=True, slots=True)
class Arrival:
    """Records as the projector meets them: in this order, cut into these batches."""

    batches: tuple[tuple[Record, ...], ...]


@st.composite
def arrivals(draw: st.DrawFn) -> Arrival:
    distinct = draw(
        st.lists(
            st.sampled_from(DELIVERIES).flatmap(records_of) | st.just(UNDECODABLE),
            min_size=1,
            max_size=8,
        )
    )
    again = draw(st.lists(st.sampled_from(distinct), max_size=4))  # redelivered by Kafka
    ordered = draw(st.permutations(distinct + again))
    cuts = draw(st.sets(st.integers(min_value=1, max_value=max(1, len(ordered) - 1))))
    bounds = [0, *sorted(c for c in cuts if c < len(ordered)), len(ordered)]
    return Arrival(tuple(tuple(ordered[a:b]) for a, b in itertools.pairwise(bounds)))


def _project(conn: psycopg.Connection[object], arrival: Arrival) -> None:
    """What the projector's batch does with decoded records (`Projector._decode`)."""
    for batch in arrival.batches:
        upserts: list[DeliveryUpsert] = []
        rows: list[AttemptInsert] = []
        for record in batch:
            match record:
                case DeliveryCommand():
                    upserts.append(from_command(record))
                case DeliveryAttempt():
                    upsert, row = from_attempt(record)
                    upserts.append(upsert)
                    rows.append(row)
                case DeadLetter():
                    letter = from_dead_letter(record)
                    if letter is not None:
                        upserts.append(letter)
        apply_batch(conn, upserts, rows, [])


def _proposal(record: Record) -> tuple[str, Proposal] | None:
    """What each record says about its delivery, in the words of the documented rule."""
    match record:
        case DeliveryCommand():
            return record.delivery_id, Proposal(
                "pending", record.created_at, None, record.last_error
            )
        case DeliveryAttempt():
            next_at = record.next_attempt_at if record.outcome == "retrying" else None
            status = status_of_outcome(record.outcome)
            return record.delivery_id, Proposal(status, record.at, next_at, record.error)
        case DeadLetter(command=None):
            return None
        case DeadLetter(command=tried):
            assert tried is not None
            return tried.delivery_id, Proposal("dead", record.at, None, record.error)


def _expected(arrival: Arrival) -> dict[str, dict[str, Any]]:
    records = [r for batch in arrival.batches for r in batch]
    proposals: dict[str, list[Proposal]] = {}
    commands_of: dict[str, list[DeliveryCommand]] = {}
    tried: dict[str, set[tuple[int, datetime]]] = {}
    for record in records:
        said = _proposal(record)
        if said is None:
            continue
        delivery, proposal = said
        proposals.setdefault(delivery, []).append(proposal)
        tried.setdefault(delivery, set())
        match record:
            case DeliveryCommand():
                commands_of.setdefault(delivery, []).append(record)
            case DeadLetter(command=DeliveryCommand() as command):
                commands_of.setdefault(delivery, []).append(command)
            case DeliveryAttempt():
                tried[delivery].add((record.attempt, record.at))
    expected: dict[str, dict[str, Any]] = {}
    for delivery, told in proposals.items():
        status, at, next_attempt_at, last_error = fold(told)
        key = status_key(status, at)
        sent = commands_of.get(delivery, [])
        expected[delivery] = {
            "status": status,
            "status_terminal": key.terminal,
            "status_at": at,
            "status_rank": key.rank,
            "next_attempt_at": next_attempt_at,
            "last_error": last_error,
            "occurred_at": sent[0].occurred_at if sent else None,
            "payload": sent[0].payload if sent else None,
            "created_at": min(p.at for p in told),
            "updated_at": max(p.at for p in told),
            "attempts": sorted(tried[delivery]),
        }
    return expected


def _rows(conn: psycopg.Connection[object]) -> dict[str, dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT delivery_id, status, status_terminal, status_at, status_rank,"
            " next_attempt_at, last_error, occurred_at, payload, created_at, updated_at"
            " FROM deliveries"
        )
        names = [column.name for column in cur.description or ()]
        deliveries: list[tuple[Any, ...]] = cur.fetchall()  # type: ignore[assignment]
        cur.execute("SELECT delivery_id, attempt, at FROM delivery_attempts")
        tried: list[tuple[str, int, datetime]] = cur.fetchall()  # type: ignore[assignment]
    rows = {row[0]: dict(zip(names[1:], row[1:], strict=True)) for row in deliveries}
    for row in rows.values():
        row["payload"] = None if row["payload"] is None else bytes(row["payload"])
    for delivery, row in rows.items():
        row["attempts"] = sorted((n, at) for d, n, at in tried if d == delivery)
    return rows


@settings(
    max_examples=150,
    deadline=None,
)
@given(arrival=arrivals())
def test_the_upserts_keep_what_the_status_rule_decides(
    conn: psycopg.Connection[object], arrival: Arrival
) -> None:
    conn.execute("TRUNCATE deliveries, delivery_attempts")
    _project(conn, arrival)
    rows, expected = _rows(conn), _expected(arrival)
    assert rows.keys() == expected.keys()
    drift = {
        (delivery, name): (row[name], expected[delivery][name])
        for delivery, row in rows.items()
        for name in row
        if row[name] != expected[delivery][name]
    }
    assert not drift, f"(delivery, column): (row, rule) {drift}"
