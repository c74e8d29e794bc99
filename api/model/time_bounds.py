"""The instants a job may name. A replay looks its times up with Kafka's `offsets_for_times`,
which takes milliseconds since the Unix epoch (negative values are sentinels the broker
refuses), and Python's datetime ends in year 9999; a time outside both cannot be served.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from schemas.event_data import format_rfc3339

EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9999, 12, 30, 23, 59, 59, 999000, tzinfo=UTC)
"""A day short of `datetime.max`, so shifting it by any UTC offset stays representable."""
RANGE: Final = f"from {format_rfc3339(EARLIEST)} to {format_rfc3339(LATEST)}"


def time_problem(moment: datetime) -> str | None:
    """Why `moment` (aware) cannot be a job's time; None when it can."""
    if not EARLIEST <= moment <= LATEST:
        return "must be " + RANGE
    return None
