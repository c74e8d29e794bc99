"""Reconciling a chaos run: what the receiver saw against what was accepted, and the
PostgreSQL history against what the receiver saw."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from core.ids import delivery_id
from core.matching import matches
from core.records import DomainEvent, Subscription
from hookline.app.receiver import Received
from hookline.runtime.settings import Settings
from tests.chaos.harness import FLAKY_PATH


@dataclass(frozen=True, slots=True)
class Seen:
    """What the receiver answered 2xx to, per (webhook-id, subscription id)."""

    successes: Counter[tuple[str, str]]
    requests: int
    unverified: int
    inconsistent_bodies: int  # pairs whose 2xx requests did not all carry the same body

    @property
    def pairs(self) -> set[tuple[str, str]]:
        return set(self.successes)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.successes.values())

    @property
    def duplicated_ids(self) -> int:
        return sum(1 for n in self.successes.values() if n > 1)


def seen(received: Sequence[Received], by_path: Mapping[str, Subscription]) -> Seen:
    """Successful receipts by pair; the flaky path answers 503 to each id's first request."""
    requests_by_pair: Counter[tuple[str, str]] = Counter()
    bodies: dict[tuple[str, str], set[bytes]] = {}
    unverified = 0
    for request in received:
        sub = by_path.get(request.path)
        if sub is None:
            continue
        pair = (request.webhook_id, sub.id)
        requests_by_pair[pair] += 1
        bodies.setdefault(pair, set()).add(request.body)
        if not request.verified:
            unverified += 1
    flaky = by_path[FLAKY_PATH].id
    successes: Counter[tuple[str, str]] = Counter()
    for pair, count in requests_by_pair.items():
        ok = count - 1 if pair[1] == flaky else count
        if ok > 0:
            successes[pair] = ok
    return Seen(
        successes=successes,
        requests=len(received),
        unverified=unverified,
        inconsistent_bodies=sum(1 for b in bodies.values() if len(b) > 1),
    )


def worst_latency_s(
    events: Iterable[DomainEvent],
    subscriptions: Sequence[Subscription],
    received: Sequence[Received],
    by_path: Mapping[str, Subscription],
    *,
    since: float,
    within_s: float,
) -> float | None:
    """The longest an event published in `within_s` after `since` (epoch seconds) waited
    until its last matching subscription had it (2xx; the flaky path's second request): what
    a fault cost the partitions it stalled, those of a killed consumer until its group
    rebalanced included. None when no such event was delivered everywhere."""
    flaky = by_path[FLAKY_PATH].id
    receipts: dict[tuple[str, str], list[float]] = {}
    for request in received:
        sub = by_path.get(request.path)
        if sub is not None:
            receipts.setdefault((request.webhook_id, sub.id), []).append(request.received_at)
    worst: float | None = None
    for event in events:
        published = event.occurred_at.timestamp()
        if not since <= published < since + within_s:
            continue
        done = []
        for sub in subscriptions:
            if matches(sub, event):
                times = sorted(receipts.get((event.id, sub.id), []))
                nth = 1 if sub.id == flaky else 0
                if len(times) <= nth:
                    break
                done.append(times[nth])
        else:
            latency = max(done, default=published) - published
            worst = latency if worst is None else max(worst, latency)
    return worst


@dataclass(frozen=True, slots=True)
class HistoryRow:
    status: str
    attempts: int
    delivered_attempts: int


def history(settings: Settings) -> dict[tuple[str, str], HistoryRow]:
    """The read model's deliveries of this run, by (event id, subscription id)."""
    assert settings.database_url is not None
    query = sql.SQL(
        "SELECT d.event_id, d.subscription_id, d.delivery_id, d.status,"
        " count(a.delivery_id) AS attempts,"
        " count(a.delivery_id) FILTER (WHERE a.outcome = 'delivered') AS delivered"
        " FROM {schema}.deliveries d LEFT JOIN {schema}.delivery_attempts a"
        " ON a.delivery_id = d.delivery_id"
        " GROUP BY d.event_id, d.subscription_id, d.delivery_id, d.status"
    ).format(schema=sql.Identifier(settings.topic_prefix))
    rows: dict[tuple[str, str], HistoryRow] = {}
    try:
        with psycopg.connect(settings.database_url.value, connect_timeout=5) as conn:
            for event_id, sub_id, d_id, status, attempts, delivered in conn.execute(query):
                assert d_id == delivery_id(event_id, sub_id), f"delivery id of {event_id}/{sub_id}"
                rows[(event_id, sub_id)] = HistoryRow(status, attempts, delivered)
    except psycopg.errors.UndefinedTable:
        return {}
    return rows


def history_gaps(
    rows: Mapping[tuple[str, str], HistoryRow], wanted: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Pairs of `wanted` not yet shown as delivered with at least one delivered attempt."""
    return {
        pair
        for pair in wanted
        if (row := rows.get(pair)) is None
        or row.status != "delivered"
        or row.delivered_attempts < 1
    }


@dataclass(frozen=True, slots=True)
class Report:
    """One scenario's figures, printed in the terminal summary."""

    scenario: str
    seed: int
    accepted: int
    refused: int
    expected: int
    delivered: int
    lost: int
    duplicates: int
    duplicated_ids: int
    faults: tuple[str, ...]
    seconds: float
    resumed: tuple[str, ...] = ()  # how soon delivery resumed after each watched fault

    def line(self) -> str:
        return (
            f"{self.scenario:<16} seed={self.seed:<10} accepted={self.accepted:<6}"
            f" refused={self.refused:<4} expected={self.expected:<6} delivered={self.delivered:<6}"
            f" lost={self.lost:<3} duplicates={self.duplicates:<5}"
            f" (ids={self.duplicated_ids}) {self.seconds:5.0f}s  faults: {', '.join(self.faults)}"
            + (f"  resumed: {'; '.join(self.resumed)}" if self.resumed else "")
        )
