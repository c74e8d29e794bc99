"""`hookline up`: the whole platform in one process (API, router, deliverer, projector, replayer).

Starts the local Kafka and PostgreSQL when none is configured, reuses them when running,
generates local credentials on first start, and refuses a second `up` on the same data folder.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from prometheus_client import CollectorRegistry

from core.errors import HooklineError
from hookline.app.commands import resolve_infrastructure
from hookline.app.credentials import with_local_credentials
from hookline.runtime.openfiles import OWN_FILES, within_open_files
from hookline.runtime.settings import Settings
from hookline.runtime.supervisor import Service, Supervisor
from hookline.runtime.topics import ensure_topics

READY_TIMEOUT_S = 120.0


class AlreadyRunning(HooklineError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"already running ({detail})")


def build_services(settings: Settings, registry: CollectorRegistry) -> list[tuple[str, Service]]:
    """The composition root of the one-process platform."""
    from api.http.service import ApiService
    from api.projector.service import Projector
    from api.replayer.service import Replayer
    from deliverer.service import Deliverer
    from router.service import Router

    return [
        ("router", Router(settings, registry)),
        ("deliverer", Deliverer(settings, registry)),
        ("projector", Projector(settings, registry)),
        ("replayer", Replayer(settings, registry)),
        ("api", ApiService(settings, registry)),
    ]


@contextmanager
def single_instance(folder: Path, description: str) -> Iterator[None]:
    """Hold a lock on `folder/up.pid`; a second holder gets AlreadyRunning naming the first."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "up.pid"
    handle: IO[str] = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise AlreadyRunning(handle.read().strip() or "another hookline up") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, {description}")
        handle.flush()
        yield
    finally:
        handle.close()


@dataclass(slots=True)
class Platform:
    settings: Settings
    supervisor: Supervisor

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"


def prepare(settings: Settings) -> Settings:
    """Settings of a local platform: infrastructure, credentials and topics in place."""
    settings = resolve_infrastructure(settings)
    settings = with_local_credentials(settings, settings.data_dir / "local")
    ensure_topics(settings)
    return settings


def reserved_files() -> int:
    """Descriptors the API's connections must leave to the rest of the platform: every
    webhook connection the deliverer may hold open, and the process's own."""
    from deliverer.sender import MAX_CONNECTIONS

    return MAX_CONNECTIONS + OWN_FILES


def start_platform(settings: Settings) -> Platform:
    settings = within_open_files(settings, reserved=reserved_files())
    registry = CollectorRegistry()
    supervisor = Supervisor(build_services(settings, registry))
    supervisor.start()
    waiting = supervisor.wait_ready(READY_TIMEOUT_S)
    if waiting:
        supervisor.stopping.set()
        supervisor.join()
        failed = "; ".join(f"{name}: {exc}" for name, exc in supervisor.failures)
        raise HooklineError(failed or f"not ready in time: {', '.join(waiting)}")
    return Platform(settings, supervisor)


def stop_platform(platform: Platform) -> int:
    platform.supervisor.stopping.set()
    stuck = platform.supervisor.join()
    if stuck:
        print(f"hookline: did not stop in time: {', '.join(stuck)}", file=sys.stderr)
        return 1
    if platform.supervisor.failures:
        name, exc = platform.supervisor.failures[0]
        print(f"hookline: {name} failed: {exc}", file=sys.stderr)
        return 1
    return 0
