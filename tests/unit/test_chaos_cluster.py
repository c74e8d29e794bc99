"""The cluster scenarios' choice of broker to kill, their "back in sync" check, and the worst
wait of the events published after a fault."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.records import DomainEvent, Ref
from hookline.app.receiver import Received
from tests.chaos.cluster import PartitionView, busiest_leader, out_of_sync
from tests.chaos.harness import FLAKY_PATH
from tests.chaos.reconcile import worst_latency_s
from tests.factories import subscription


def _view(leader: int, *in_sync: int, partition: int = 0) -> PartitionView:
    return PartitionView("t.events", partition, leader, in_sync)


def test_the_busiest_leader_leads_the_most_partitions() -> None:
    views = [_view(2), _view(3), _view(2), _view(1), _view(3), _view(2)]
    assert busiest_leader(views) == 2


def test_equal_leaders_give_the_lowest_node_id() -> None:
    assert busiest_leader([_view(3), _view(2), _view(3), _view(2)]) == 2


def test_partitions_without_a_leader_do_not_count() -> None:
    assert busiest_leader([_view(-1), _view(-1), _view(3)]) == 3
    with pytest.raises(ValueError, match="no partition has a leader"):
        busiest_leader([_view(-1)])


def test_out_of_sync_names_partitions_short_of_replicas_or_leaderless() -> None:
    full = _view(1, 1, 2, 3, partition=0)
    short = _view(1, 1, 2, partition=1)
    leaderless = _view(-1, 1, 2, 3, partition=2)
    assert out_of_sync([full, short, leaderless], 3) == [short, leaderless]


def _event(event_id: str, event_type: str, published: float) -> DomainEvent:
    return DomainEvent(
        id=event_id,
        type=event_type,
        tenant="acme",
        occurred_at=datetime.fromtimestamp(published, UTC),
        subject=Ref("task", "t-1"),
        actor=None,
        data={},
    )


def _receipt(event_id: str, path: str, at: float) -> Received:
    return Received(event_id, path, b"{}", {}, verified=True, received_at=at)


def test_the_worst_wait_counts_events_published_in_the_window_until_delivered_everywhere() -> None:
    every = subscription("s-all", "*")
    flaky = subscription("s-flaky", "task.assigned")
    by_path = {"/all": every, FLAKY_PATH: flaky}
    events = [
        _event("before", "task.created", 99.0),  # before the window: not counted
        _event("quick", "task.created", 100.5),
        _event("stalled", "task.assigned", 101.0),  # its flaky path's 2xx is the 2nd request
        _event("late", "task.created", 125.0),  # after the window: not counted
    ]
    received = [
        _receipt("before", "/all", 140.0),
        _receipt("quick", "/all", 101.0),
        _receipt("stalled", "/all", 101.5),
        _receipt("stalled", FLAKY_PATH, 102.0),
        _receipt("stalled", FLAKY_PATH, 113.0),
        _receipt("late", "/all", 160.0),
    ]
    wait = worst_latency_s(events, [every, flaky], received, by_path, since=100.0, within_s=20.0)
    assert wait == pytest.approx(12.0)


def test_no_event_delivered_everywhere_in_the_window_gives_no_wait() -> None:
    every = subscription("s-all", "*")
    flaky = subscription("s-flaky", "task.assigned")
    by_path = {"/all": every, FLAKY_PATH: flaky}
    events = [_event("stalled", "task.assigned", 101.0)]
    received = [_receipt("stalled", "/all", 101.5), _receipt("stalled", FLAKY_PATH, 102.0)]
    assert (
        worst_latency_s(events, [every, flaky], received, by_path, since=100.0, within_s=20.0)
        is None
    )
