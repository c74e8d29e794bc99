"""The cluster scenarios' choice of broker to kill, and their "back in sync" check."""

from __future__ import annotations

import pytest

from tests.chaos.cluster import PartitionView, busiest_leader, out_of_sync


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
