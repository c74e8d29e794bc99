"""Bounded waits around librdkafka calls that can block for good, and a place to leave
clients that can no longer be closed safely.

`send_offsets_to_transaction` can block past its timeout once the group coordinator it
cached went away (librdkafka issues #5456, #5511: after a broker restart, a broker that
briefly vanished from metadata is decommissioned and the request is never re-triggered).
A wedged client cannot be closed or destroyed from the calling thread without blocking it
too, so it is kept referenced here (never garbage-collected, which would destroy it) while
its close runs on a daemon thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from router.errors import ProducerWedged

log = logging.getLogger(__name__)

_ABANDONED: list[object] = []


def with_deadline(call: Callable[[], object], deadline_s: float, transactional_id: str) -> None:
    """Run `call` on a watchdog thread: its exception is raised here; ProducerWedged when it
    is not back within `deadline_s` (the thread is then left to its blocked call)."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="router-transaction", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if thread.is_alive():
        raise ProducerWedged(transactional_id, deadline_s)
    if failure:
        raise failure[0]


def abandon(client: object, close: Callable[[], object], *, what: str) -> None:
    """Keep `client` alive for good and try `close()` on a daemon thread: should the close
    block too, only that thread waits."""
    _ABANDONED.append(client)

    def target() -> None:
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - a broken client's close may fail; noted
            log.info("router: closing the abandoned %s: %s", what, exc)

    threading.Thread(target=target, name=f"router-abandon-{what}", daemon=True).start()


def abandoned() -> int:
    """How many clients were left behind in this process."""
    return len(_ABANDONED)
