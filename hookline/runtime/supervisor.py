"""Runs several services in one process, each in its own thread, and stops them together:
how the integration tests run a pipeline. (`hookline up` runs each service as a process of
its own instead: hookline/app/processes.py.)

A service that fails stops the whole process loudly (never a silent restart: faust's
"consumers slowly die" came from supervisors that hid failures). SIGTERM and SIGINT set one
stopping event; every service drains and commits, then the process exits.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

from core.errors import HooklineError

log = logging.getLogger(__name__)


class Service(Protocol):
    @property
    def ready(self) -> bool: ...

    def run(self, stopping: threading.Event) -> None: ...


@dataclass(slots=True)
class Supervisor:
    services: Sequence[tuple[str, Service]]
    stopping: threading.Event = field(default_factory=threading.Event)
    failures: list[tuple[str, BaseException]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for name, service in self.services:
            thread = threading.Thread(
                target=self._guard, args=(name, service), name=f"hookline-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _guard(self, name: str, service: Service) -> None:
        try:
            service.run(self.stopping)
        except HooklineError as exc:
            # a failure the user can fix (a port in use, a missing topic): its one line says
            # it all, and the command ends with it; tracebacks are for bugs
            log.error("service %s failed: %s; stopping every service", name, exc)  # noqa: TRY400
            self.failures.append((name, exc))
        except BaseException as exc:
            log.exception("service %s failed; stopping every service", name)
            self.failures.append((name, exc))
        finally:
            # one service ending on its own, failed or not, ends the process
            self.stopping.set()

    def wait_ready(self, timeout_s: float) -> list[str]:
        """Wait until every service is ready; returns the names still not ready."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stopping.is_set():
            waiting = [name for name, service in self.services if not service.ready]
            if not waiting:
                return []
            time.sleep(0.1)
        return [name for name, service in self.services if not service.ready]

    def join(self, timeout_s: float = 60.0) -> list[str]:
        """Join every thread; returns the names of those that did not stop in time."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self._threads if t.is_alive()]


def interrupt_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt, as SIGINT does, so a command still starting up
    unwinds through its `finally` blocks (and stops what it started) on either."""

    def handle(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handle)


def stop_on_signals(stopping: threading.Event) -> None:
    """SIGTERM and SIGINT set `stopping` (call from the main thread)."""

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
