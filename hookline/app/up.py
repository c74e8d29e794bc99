"""`hookline up`: the whole platform, each service (API, router, deliverer, projector, replayer)
a process of its own under one supervising command.

Starts the local Kafka and PostgreSQL when none is configured, reuses them when running, stops
on the way out those it started, generates local credentials on first start, and refuses a
second `up` on the same data folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import hookline
from core.errors import HooklineError
from hookline.app.credentials import with_local_credentials
from hookline.app.localstack.process import port_is_free
from hookline.app.localstack.stack import (
    PARTS,
    local_data_dir,
    resolve_infrastructure,
    running_parts,
    stop_stack,
)
from hookline.app.processes import (
    Address,
    Child,
    ProcessSupervisor,
    child_environment,
    exit_description,
)
from hookline.app.restarts import RestartPolicy
from hookline.runtime.errors import PortTaken
from hookline.runtime.openfiles import raise_open_files_limit
from hookline.runtime.settings import Settings, env_name, environment, flag_name
from hookline.runtime.topics import ensure_topics

READY_TIMEOUT_S = 120.0
CODE_ROOT: Final = Path(hookline.__file__).resolve().parents[1]
"""The folder this process imported hookline (and core, router, ...) from."""


class AlreadyRunning(HooklineError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"already running ({detail})")


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


SERVICES: Final = ("router", "deliverer", "projector", "replayer", "api")


@dataclass(frozen=True, slots=True)
class Platform:
    """The running platform: its settings (the API's port the one it got) and the processes."""

    settings: Settings
    supervisor: ProcessSupervisor

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def metrics(self) -> dict[str, Address]:
        """Where each service but the API (which serves them on its own port) serves
        `/metrics`, `/healthz` and `/readyz`."""
        return {name: self.supervisor.address(name) for name in SERVICES if name != "api"}


def start_platform(settings: Settings) -> Platform:
    """Every service started as its own process and ready; when one cannot start (or on an
    interrupt) those started are stopped first. An API port of 0 becomes the port the API
    was given, and every other service takes any free port for its metrics."""
    raise_open_files_limit()  # the children inherit it: the deliverer's connections need room
    # a router restarted under the same name takes its partitions back at once and fences
    # the transaction its predecessor left open. One `up` runs per data folder at a time, so
    # a name of the folder's is never taken by a live router of another `up`
    folder = hashlib.sha256(str(settings.data_dir).encode()).hexdigest()[:12]
    router = settings.instance_id or f"up-{folder}-router"
    children = [
        _child(name, settings.with_changes(instance_id=router if name == "router" else None))
        for name in SERVICES
    ]
    supervisor = ProcessSupervisor(children, policy=RestartPolicy())
    supervisor.start()
    supervisor.wait_ready(READY_TIMEOUT_S)
    api_port = supervisor.address("api").port
    return Platform(settings.with_changes(api_port=api_port), supervisor)


def _child(name: str, settings: Settings) -> Child:
    """Service `name` with every setting `up` resolved in its environment (secrets are never
    put on a command line, which any local user may read)."""
    port = "api_port" if name == "api" else "metrics_port"
    env = child_environment(os.environ, environment(settings.with_changes(metrics_port=0)))
    # the code this process runs, whatever the working directory holds: -P keeps it off the
    # path, where another checkout of hookline would shadow this one
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(CODE_ROOT), env.get("PYTHONPATH"))))
    command = (sys.executable, "-P", "-m", "hookline.app.cli", name)  # `hookline <name>`
    return Child(name, command, env, port_variable=env_name(port))


def stop_platform(platform: Platform) -> int:
    """Stop every service; 1 (and one line saying why) when one kept dying, would not stop
    in time or failed while stopping."""
    stopped = platform.supervisor.stop()
    failure = platform.supervisor.failure
    if failure is not None:
        print(f"hookline: {failure}; every service stopped", file=sys.stderr)
        return 1
    if stopped.killed:
        print(f"hookline: did not stop in time: {', '.join(stopped.killed)}", file=sys.stderr)
        return 1
    if stopped.failed:
        failed = ", ".join(f"{name} ({exit_description(code)})" for name, code in stopped.failed)
        print(f"hookline: failed while stopping: {failed}", file=sys.stderr)
        return 1
    return 0
