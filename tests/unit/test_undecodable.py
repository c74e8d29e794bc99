"""The one dead letter of an unreadable record: its reason comes from the decode error, its
key is the subscription when the reader knows it, else the record's own key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.undecodable import REASONS, Source, undecodable_letter
from schemas.errors import UndecodableRecord, UnknownWriterSchema

AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SOURCE = Source("p.events", 2, 41, b"task-1")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (UndecodableRecord("bad magic 0000"), "undecodable"),
        (UnknownWriterSchema(b"\x01" * 8), "unknown schema"),
    ],
)
def test_the_reason_comes_from_the_decode_error(error: UndecodableRecord, reason: str) -> None:
    dead = undecodable_letter(
        SOURCE,
        b"\x00garbage",
        reason=error.dead_letter_reason,
        error=str(error.at("p.events", 2, 41)),
        letter_id="l1",
        at=AT,
    )
    assert dead.letter.reason == reason
    assert reason in REASONS
    assert dead.letter.error is not None
    assert "p.events[2]@41" in dead.letter.error


def test_the_letter_carries_the_coordinates_and_the_bytes_keyed_by_the_record() -> None:
    dead = undecodable_letter(
        SOURCE, b"\x00garbage", reason="undecodable", error="e", letter_id="l1", at=AT
    )
    letter = dead.letter
    assert dead.key == b"task-1"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "p.events",
        2,
        41,
    )
    assert letter.raw_value == b"\x00garbage"
    assert (letter.id, letter.at, letter.command, letter.subscription_id) == ("l1", AT, None, None)


def test_a_known_subscription_keys_the_letter() -> None:
    dead = undecodable_letter(
        SOURCE,
        None,
        reason="undecodable",
        error="e",
        letter_id="l1",
        at=AT,
        subscription_id="sub-9",
    )
    assert dead.key == b"sub-9"
    assert dead.letter.subscription_id == "sub-9"
