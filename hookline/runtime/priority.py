"""The CPU priority of a service that is off every webhook's way (the projector, the
replayer): on a machine it shares with the API, the router and the deliverer it yields them
the CPU, so a busy read model delays history rows, not webhooks. Where each service has a
machine or a container of its own this changes nothing."""

from __future__ import annotations

import logging
import os
from typing import Final

log = logging.getLogger(__name__)

OFF_PATH_NICENESS: Final = 5
"""Added to the process's niceness: about a third of the CPU share of a process at 0 when
both want a core, and all of it when the others are idle."""


def yield_cpu_to_webhooks() -> None:
    """Lower this process's CPU priority by `OFF_PATH_NICENESS` (where the OS allows it)."""
    try:
        os.nice(OFF_PATH_NICENESS)
    except OSError as exc:
        log.warning("cannot lower this process's CPU priority: %s", exc)
