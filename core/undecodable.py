"""The dead letter of a record that cannot be decoded: one reason vocabulary, one key rule.

Every consumer that meets bytes it cannot read (the router, the deliverer, the projector, the
replayer) builds its letter here, so readers of the dead-letters topic see one shape: the
source coordinates, the raw bytes, the decoder's message, and a reason from `REASONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, TypeAlias

from core.records import DeadLetter

UndecodableReason: TypeAlias = Literal["undecodable", "unknown schema"]
"""`unknown schema`: a well-formed record whose writer schema no registry holds (a producer
registered nothing, or a registry was lost), so registering it makes the record readable;
`undecodable`: anything else the decoder refuses."""
REASONS: Final[tuple[UndecodableReason, ...]] = ("undecodable", "unknown schema")


@dataclass(frozen=True, slots=True)
class Source:
    """Where the record was read: its coordinates and its key as read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None


@dataclass(frozen=True, slots=True)
class KeyedLetter:
    """A dead letter and the key it is written under."""

    key: bytes | None
    letter: DeadLetter


def undecodable_letter(
    source: Source,
    raw_value: bytes | None,
    *,
    reason: UndecodableReason,
    error: str,
    letter_id: str,
    at: datetime,
    subscription_id: str | None = None,
) -> KeyedLetter:
    """The letter of an unreadable record, keyed by its subscription when the reader knows
    it (the deliverer's backlog), else by the record's own key, so it lands in the same
    partition as the letters of records it was written next to."""
    key = source.key if subscription_id is None else subscription_id.encode()
    return KeyedLetter(
        key,
        DeadLetter(
            id=letter_id,
            reason=reason,
            at=at,
            subscription_id=subscription_id,
            command=None,
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            raw_value=raw_value,
            error=error,
        ),
    )
