"""When `hookline up` restarts a service process that died, and when it gives up: a pure rule
over the times of the service's deaths, so it is tested without processes or clocks.

A death is never hidden (faust's "consumers slowly die" came from supervisors that did): each
one is logged, the wait before the restart doubles with every recent death, and too many in
a window stop the whole platform, since restarting will not fix what keeps killing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Restart:
    delay_s: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    deaths: int
    window_s: float


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Wait `first_delay_s` after a death, doubled for each earlier death within `window_s`
    up to `max_delay_s`; give up at the `max_deaths`-th death within `window_s`."""

    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    max_deaths: int = 8
    window_s: float = 600.0

    def after(self, deaths_s: Sequence[float], now_s: float) -> Restart | GiveUp:
        """What to do now, at `now_s`, about a service whose deaths (this one included,
        on the same monotonic clock) happened at `deaths_s`."""
        recent = sum(1 for at in deaths_s if now_s - at < self.window_s)
        if recent >= self.max_deaths:
            return GiveUp(recent, self.window_s)
        doublings = max(recent - 1, 0)
        return Restart(min(self.first_delay_s * 2**doublings, self.max_delay_s))
