"""The retry schedule as data: delays after each failed attempt, jitter, legacy tiers, Retry-After.

Randomness and the clock are passed in, so every rule here is deterministic under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Final

# Retry tier topic suffixes, shortest first, and the nominal delay each one stands for. Since
# retries became timers in the deliverer's backlog the tiers are only read (and forwarded to
# `deliveries`), so that records written by earlier versions are still delivered.
TIERS: Final[tuple[str, ...]] = ("5s", "5m", "30m", "2h", "5h", "10h")
TIER_DELAYS_S: Final = MappingProxyType(
    {"5s": 5, "5m": 300, "30m": 1800, "2h": 7200, "5h": 18000, "10h": 36000}
)
# Delay after failed attempt 1, 2, ..., 7; an eighth failure dead-letters.
DEFAULT_SCHEDULE_S: Final[tuple[float, ...]] = (5, 300, 1800, 7200, 18000, 36000, 36000)
DEFAULT_JITTER: Final = 0.2


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Delays (seconds) after each failed attempt, with ±``jitter`` as a fraction of each."""

    delays_s: tuple[float, ...] = DEFAULT_SCHEDULE_S
    jitter: float = DEFAULT_JITTER

    def __post_init__(self) -> None:
        if any(delay < 0 for delay in self.delays_s):
            raise ValueError(f"retry delays must be >= 0, got {self.delays_s}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    @property
    def max_attempts(self) -> int:
        """Attempts made before dead-lettering: the first one plus one per delay."""
        return len(self.delays_s) + 1

    def next_delay_s(self, attempt: int, rand: float) -> float | None:
        """Delay before the next attempt after ``attempt`` attempts failed; None = exhausted.

        ``rand`` in [0, 1) maps linearly onto [-jitter, +jitter) of the nominal delay.
        """
        if attempt < 1:
            raise ValueError(f"attempt counts attempts made so far and starts at 1, got {attempt}")
        if not 0 <= rand < 1:
            raise ValueError(f"rand must be in [0, 1), got {rand}")
        if attempt > len(self.delays_s):
            return None
        nominal_s = self.delays_s[attempt - 1]
        return nominal_s * (1 + self.jitter * (2 * rand - 1))

    def scaled(self, factor: float) -> RetrySchedule:
        """The same schedule with every delay multiplied by ``factor`` (tests use 0.001)."""
        if factor <= 0:
            raise ValueError(f"scale factor must be > 0, got {factor}")
        return RetrySchedule(
            delays_s=tuple(delay * factor for delay in self.delays_s), jitter=self.jitter
        )


def retry_after_s(header_value: str | None, *, now: datetime, max_s: float) -> float | None:
    """Seconds a Retry-After header asks to wait (delay-seconds or HTTP-date), in [0, max_s].

    None when the header is absent or unreadable; ``now`` must be timezone-aware.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if header_value is None:
        return None
    text = header_value.strip()
    if text.isascii() and text.isdigit():
        # Long digit strings would overflow float (or int parsing): they mean "very long".
        wait_s = float(int(text)) if len(text) <= 15 else math.inf
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" zone: RFC 5322 says UTC with unknown origin
            when = when.replace(tzinfo=UTC)
        wait_s = (when - now).total_seconds()
    return min(max(wait_s, 0.0), max_s)
