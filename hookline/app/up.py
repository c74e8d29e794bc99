"""`hookline up`: the whole platform in one process (API, router, deliverer, projector, replayer).

Starts the local Kafka and PostgreSQL when none is configured, reuses them when running, stops
on the way out those it started, generates local credentials on first start, and refuses a
second `up` on the same data folder.
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
from hookline.app.commands import local_data_dir, resolve_infrastructure
from hookline.app.credentials import with_local_credentials
from hookline.app.localstack.process import port_is_free
from hookline.app.localstack.stack import PARTS, running_parts, stop_stack
from hookline.runtime.errors import PortTaken
from hookline.runtime.openfiles import OWN_FILES, within_open_files
from hookline.runtime.settings import Settings, env_name, flag_name
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


def check_api_port(settings: Settings) -> None:
    """Stop before anything starts when the API's port is taken, saying how to choose another."""
    if settings.api_port != 0 and not port_is_free(settings.api_port, settings.api_host):
        raise PortTaken(
            settings.api_host,
            settings.api_port,
            flag=flag_name("api_port"),
            variable=env_name("api_port"),
        )


@contextmanager
def local_stack_for(settings: Settings, *, keep: bool) -> Iterator[frozenset[str]]:
    """Around a command that may start the local stack: yields the parts it will start, and
    on the way out (however it ends) stops them unless `keep`. Parts that ran before, or that
    the settings do not need, are left alone; what keeps running is said."""
    folder = local_data_dir(settings)
    if settings.kafka_bootstrap is not None and settings.database_url is not None:
        yield frozenset()
        return
    starting = PARTS - running_parts(folder)
    try:
        yield starting
    finally:
        if starting and not keep:
            print(f"stopping the local {_named(starting)} it started...", flush=True)
            stop_stack(folder, starting)
        else:
            why = "--keep-stack" if starting else "they were running before"
            print(
                f"the local {_named(PARTS)} keep running ({why}); `hookline stack stop` stops them",
                flush=True,
            )


def _named(parts: frozenset[str]) -> str:
    names = {"kafka": "Kafka", "postgres": "PostgreSQL"}
    return " and ".join(names[part] for part in sorted(parts))


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
    """Every service started and ready; on a failure (or an interrupt) while starting, those
    started are stopped first. An API port of 0 becomes the port the API was given."""
    settings = within_open_files(settings, reserved=reserved_files())
    registry = CollectorRegistry()
    services = build_services(settings, registry)
    supervisor = Supervisor(services)
    supervisor.start()
    try:
        waiting = supervisor.wait_ready(READY_TIMEOUT_S)
    except BaseException:
        supervisor.stopping.set()
        supervisor.join()
        raise
    if waiting:
        supervisor.stopping.set()
        supervisor.join()
        mistakes = [exc for _, exc in supervisor.failures if isinstance(exc, HooklineError)]
        if len(supervisor.failures) == 1 and mistakes:
            raise mistakes[0]  # its own line: "port 8080 ... is already in use; ..."
        failed = "; ".join(f"{name}: {exc}" for name, exc in supervisor.failures)
        raise HooklineError(failed or f"not ready in time: {', '.join(waiting)}")
    return Platform(settings.with_changes(api_port=_api_port(services)), supervisor)


def _api_port(services: list[tuple[str, Service]]) -> int:
    from api.http.service import ApiService

    api = dict(services)["api"]
    assert isinstance(api, ApiService)
    assert api.port is not None  # ready, so serving
    return api.port


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
