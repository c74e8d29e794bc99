"""The compacted table's pure rules: applying records (newer wins, tombstones) and reading
progress against end offsets (gaps, stale end-of-partition events)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from api.model.jobs import latest_state, new_job
from hookline.runtime.subscription_table import newest_version
from hookline.runtime.table import Progress, apply_records, last_written
from tests.factories import subscription


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    version: int


def _higher(previous: Row | None, record: Row) -> Row:
    return previous if previous is not None and record.version < previous.version else record


def test_records_apply_in_order_and_report_what_changed() -> None:
    rows, changes = apply_records(
        {"a": Row("a", 1)},
        [("b", Row("b", 1)), ("a", Row("a", 2)), ("a", None)],
        last_written,
    )
    assert rows == {"b": Row("b", 1)}
    assert changes == [("b", Row("b", 1)), ("a", Row("a", 2)), ("a", None)]


def test_a_record_the_rule_ignores_is_no_change() -> None:
    before = {"a": Row("a", 3)}
    rows, changes = apply_records(before, [("a", Row("a", 2))], _higher)
    assert rows == before
    assert changes == []


def test_a_tombstone_of_an_absent_key_is_no_change() -> None:
    empty: dict[str, Row] = {}
    rows, changes = apply_records(empty, [("gone", None)], last_written)
    assert (rows, changes) == ({}, [])


def test_applying_leaves_the_snapshot_it_was_given_alone() -> None:
    before = {"a": Row("a", 1)}
    apply_records(before, [("a", None)], last_written)
    assert before == {"a": Row("a", 1)}


def test_an_older_subscription_version_is_ignored() -> None:
    v1 = subscription("s", "task.*")
    v2 = dataclasses.replace(v1, version=2)
    assert newest_version(v2, v1) is v2
    v3 = dataclasses.replace(v1, version=3)
    assert newest_version(v2, v3) is v3
    assert newest_version(None, v2) is v2


def test_an_ended_job_stays_ended_in_the_table() -> None:
    running = new_job("replay", tenant="acme", subscription_id="s")
    cancelled = dataclasses.replace(running, status="cancelled")
    _rows, changes = apply_records({running.id: cancelled}, [(running.id, running)], latest_state)
    assert changes == []


def test_the_end_is_reached_through_a_gap_only_by_end_of_partition() -> None:
    progress = Progress()
    progress.start_at(0, 0)
    progress.read(0, 2)  # offset 3 is a transaction marker: no record carries it
    assert progress.behind({0: 4}) == [0]
    progress.at_end(0, 4)
    assert progress.behind({0: 4}) == []


def test_a_stale_end_of_partition_never_moves_a_position_back() -> None:
    progress = Progress()
    progress.read(0, 9)
    progress.at_end(0, 5)  # left over from an earlier read
    assert progress.positions == {0: 10}
    assert progress.behind({0: 12}) == [0]


def test_reading_starts_at_the_low_watermark() -> None:
    progress = Progress()
    progress.start_at(1, 0)
    progress.start_at(1, 7)  # everything below 7 was deleted
    assert progress.behind({1: 7}) == []
    assert progress.behind({1: 8}) == [1]
