"""The deliverer's local backlog store (SQLite in a temporary folder, no services): what it
lends to lanes, in which order, and what it forgets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deliverer.backlog import BacklogStore, CorruptChangelog, Entry, entry_from_record, entry_key


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BacklogStore]:
    opened = BacklogStore(tmp_path / "backlog.sqlite")
    yield opened
    opened.close()


def entry(seq: int, *, sub: str = "s1", due_ms: int = 0, partition: int = 0) -> Entry:
    return Entry(
        key=entry_key(seq),
        partition=partition,
        subscription_id=sub,
        seq=seq,
        due_ms=due_ms,
        created_ms=1000 + seq,
        value=f"command {seq}".encode(),
    )


def test_writes_apply_in_order_before_the_next_read(store: BacklogStore) -> None:
    store.put(entry(1))
    store.put(entry(1, due_ms=50))  # a retry replaces its entry
    store.put(entry(2))
    store.delete(0, entry_key(2))
    store.put(entry(3))
    assert store.count("s1") == 2
    assert store.next_due("s1", ordered=False) == 0
    assert [
        t.seq for t in store.take("s1", now_ms=60, limit=9, ordered=False, ignore_due=False)
    ] == [
        3,
        1,
    ]


def test_unordered_take_lends_due_entries_by_due_time_then_offset(store: BacklogStore) -> None:
    for seq, due in ((1, 300), (2, 0), (3, 100), (4, 0), (5, 9999)):
        store.put(entry(seq, due_ms=due))
    taken = store.take("s1", now_ms=300, limit=10, ordered=False, ignore_due=False)
    assert [t.seq for t in taken] == [2, 4, 3, 1], "due first, then by offset; 5 is not due"
    assert store.take("s1", now_ms=300, limit=10, ordered=False, ignore_due=False) == []
    assert store.next_due("s1", ordered=False) == 9999
    [late] = store.take("s1", now_ms=0, limit=10, ordered=False, ignore_due=True)
    assert late.seq == 5, "a subscription no longer active is settled without waiting"


def test_take_respects_the_limit_and_the_subscription(store: BacklogStore) -> None:
    for seq in range(10):
        store.put(entry(seq, sub="a" if seq % 2 else "b"))
    assert [t.seq for t in store.take("a", now_ms=0, limit=3, ordered=False, ignore_due=False)] == [
        1,
        3,
        5,
    ]
    assert [t.seq for t in store.take("a", now_ms=0, limit=3, ordered=False, ignore_due=False)] == [
        7,
        9,
    ]


def test_an_ordered_subscription_lends_only_its_head(store: BacklogStore) -> None:
    store.put(entry(7))
    store.put(entry(5, due_ms=500))  # the head: a retry keeps its offset
    store.put(entry(9))
    assert store.take("s1", now_ms=100, limit=5, ordered=True, ignore_due=False) == []
    assert store.next_due("s1", ordered=True) == 500, "nothing overtakes the waiting head"
    [head] = store.take("s1", now_ms=500, limit=5, ordered=True, ignore_due=False)
    assert head.seq == 5
    assert store.take("s1", now_ms=500, limit=5, ordered=True, ignore_due=False) == []
    assert store.next_due("s1", ordered=True) is None, "one at a time while the head is out"
    store.put(entry(5, due_ms=900))  # it failed again: back, unleased, due later
    assert store.next_due("s1", ordered=True) == 900
    store.delete(0, entry_key(5))
    assert [t.seq for t in store.take("s1", now_ms=0, limit=5, ordered=True, ignore_due=False)] == [
        7
    ]


def test_unlease_gives_an_entry_back(store: BacklogStore) -> None:
    store.put(entry(1))
    [taken] = store.take("s1", now_ms=0, limit=1, ordered=False, ignore_due=False)
    store.unlease(taken.partition, taken.key)
    assert [
        t.seq for t in store.take("s1", now_ms=0, limit=1, ordered=False, ignore_due=False)
    ] == [1]


def test_the_same_offset_in_two_partitions_is_two_entries(store: BacklogStore) -> None:
    store.put(entry(7, sub="a", partition=0))
    store.put(entry(7, sub="b", partition=1))
    store.delete(1, entry_key(7))
    assert store.count("a") == 1
    assert store.count("b") == 0


def test_dropping_partitions_forgets_them_and_counts_by_subscription(store: BacklogStore) -> None:
    store.put(entry(1, sub="a", partition=0))
    store.put(entry(2, sub="a", partition=1))
    store.put(entry(3, sub="b", partition=1))
    store.put(entry(4, sub="a", partition=1))
    assert store.counts(1) == {"a": 2, "b": 1}
    assert store.drop_partitions([1]) == {"a": 2, "b": 1}
    assert store.counts(1) == {}
    assert store.counts(0) == {"a": 1}
    assert store.oldest_created_ms("a") == 1001


def test_timers_are_counted_by_how_far_off_they_are(store: BacklogStore) -> None:
    now = 1_000_000
    for seq, due in enumerate((0, now, now + 1, now + 59_000, now + 120_000, now + 7_200_000)):
        store.put(entry(seq, due_ms=due))
    assert store.timers(now) == {"1m": 2, "10m": 1, "1h": 0, "later": 1}


def test_a_changelog_record_carries_what_the_store_needs_in_its_headers() -> None:
    original = entry(42, sub="s9", due_ms=123, partition=2)
    read = entry_from_record(2, original.key.encode(), original.value, original.headers())
    assert read == original
    with pytest.raises(CorruptChangelog):
        entry_from_record(2, b"k", b"v", [("sub", b"s9")])


def test_the_store_starts_empty_and_leaves_no_files(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    first = BacklogStore(path)
    first.put(entry(1))
    first.close()
    assert not list(tmp_path.iterdir()), "a cache of the changelog: nothing left behind"
    path.write_bytes(b"stale")
    second = BacklogStore(path)
    assert second.next_due("s1", ordered=False) is None
    second.close()
