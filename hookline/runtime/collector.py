"""The garbage collector's settings for a long-running service process.

CPython's cyclic collector runs a young collection every 700 net container allocations, and
a full one whenever the long-lived objects grew by a quarter; each walks every object of the
generations it collects. A service allocates a few dozen containers per event (records,
dicts, futures), almost all freed at once by reference counting, so at hundreds of events a
second the young collections come every few milliseconds, and the full ones walk the whole
heap (imported modules, the subscription table) while a webhook waits. `tune_collector`
moves what start-up built into the permanent generation (`gc.freeze`: never walked again)
and collects the young generation every `YOUNG_THRESHOLD` allocations instead of 700.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 50_000


def tune_collector() -> None:
    """Call once start-up is done: freeze what exists, then collect the young less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
