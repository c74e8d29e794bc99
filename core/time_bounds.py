"""The instants hookline accepts in any timestamp field. A replay looks its times up with
Kafka's `offsets_for_times`, which takes milliseconds since the Unix epoch (negative values
are sentinels the broker refuses), and Python's datetime ends in year 9999; a time outside
both cannot be stored, looked up or rendered back, so every field is held to one range.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from core.records import utc_ms

EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9999, 12, 30, 23, 59, 59, 999000, tzinfo=UTC)
"""A day short of `datetime.max`, so shifting it by any UTC offset stays representable."""


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


RANGE: Final = f"from {_rfc3339(EARLIEST)} to {_rfc3339(LATEST)}"


def time_problem(moment: datetime) -> str | None:
    """Why `moment` (aware) cannot be a timestamp of hookline's; None when it can."""
    if not EARLIEST <= moment <= LATEST:
        return "must be " + RANGE
    return None


def bounded_utc(moment: datetime) -> datetime:
    """`moment` (aware) in UTC to the millisecond; ValueError, with the reason to show, when it
    is outside the bounds or has no UTC form at all."""
    try:
        utc = utc_ms(moment)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
        raise ValueError("out of range once converted to UTC; must be " + RANGE) from None
    problem = time_problem(utc)
    if problem is not None:
        raise ValueError(problem)
    return utc
