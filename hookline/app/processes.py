"""The service processes of `hookline up`: each service is its own `hookline <service>` child,
so the platform uses every core; they are started with the settings in their environment,
known ready by the line each prints, restarted when one dies, and stopped together.

Standard library only (subprocess, selectors, signal): one loop, on one thread, reads every
child's stdout and stderr, reaps the children and restarts them when their wait is up.
A child's stderr is held until it is ready, so a service that cannot start (a port taken, a
topic missing) ends `up` with its own one line rather than a screenful of its start-up.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Final

from core.errors import HooklineError
from hookline.app.restarts import GiveUp, Restart, RestartPolicy

log = logging.getLogger(__name__)

STOP_TIMEOUT_S: Final = 30.0
"""How long the children have to drain after SIGTERM before SIGKILL."""

READY_LINE: Final = re.compile(r"^(?P<name>[a-z-]+) ready: .* on (?P<host>\S+):(?P<port>\d+)\b")
"""The line a service prints once ready: `router ready: ..., metrics on 127.0.0.1:9101`, or
`api ready: listening on 127.0.0.1:8080 (...)`; the last `on HOST:PORT` is where it serves."""

HELD_LINES: Final = 1000
"""Lines of a child's stderr held until it is ready, at most (the newest are kept)."""

PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>
MISTAKE_EXIT_CODE: Final = 2  # the command line's code for a failure the user can fix


class ServiceFailed(HooklineError):
    """A service process that cannot run: it could not start (its reason is its own line), or
    it kept dying. Every service is stopped before it is reported."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


class NotReady(HooklineError):
    def __init__(self, services: Sequence[str], timeout_s: float) -> None:
        super().__init__(f"not ready within {timeout_s:g} s: {', '.join(services)}")
        self.services = tuple(services)
        self.timeout_s = timeout_s


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def ready_address(name: str, line: str) -> Address | None:
    """Where service `name` serves, when `line` is its ready line."""
    match = READY_LINE.match(line)
    if match is None or match["name"] != name:
        return None
    return Address(match["host"], int(match["port"]))


@dataclass(slots=True)
class Child:
    """One service and its current process, started as `command` with `env`. `port_variable`
    names the setting of the port it serves on: pinned to the port it got on its first start,
    so a restart keeps its address."""

    name: str
    command: tuple[str, ...]
    env: dict[str, str]
    port_variable: str
    process: subprocess.Popen[bytes] | None = None
    address: Address | None = None
    ready: bool = False
    ever_ready: bool = False
    held: deque[str] = field(default_factory=lambda: deque(maxlen=HELD_LINES))
    open_pipes: int = 0
    deaths_s: list[float] = field(default_factory=list)
    restart_at_s: float | None = None


@dataclass(slots=True)
class _Pipe:
    """A child's stdout or stderr, read in chunks and cut into lines."""

    child: Child
    stream: IO[bytes]
    stderr: bool
    partial: bytes = b""

    def lines(self, data: bytes) -> list[str]:
        *whole, self.partial = (self.partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in whole]


@dataclass(frozen=True, slots=True)
class Stopped:
    killed: tuple[str, ...]
    """Services that did not stop within the timeout and were killed."""
    failed: tuple[tuple[str, int], ...]
    """Services that exited on their own with an error while stopping, and their exit code."""


def exit_description(returncode: int) -> str:
    """`exit code 1`, or `killed by SIGKILL` for a negative (signal) return code."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:  # a real-time signal has no name
        return f"killed by signal {-returncode}"


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to send the child SIGTERM when `up` dies, however it dies
    (kill -9 included), so no service outlives it. prctl(PR_SET_PDEATHSIG) rather than a pipe
    each child watches: no service code changes, and SIGTERM is the stop every service already
    drains on. The signal follows the death of the *thread* that forked the child, which is
    why children are started only from the thread that supervises them. Elsewhere: None."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not after the fork
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # up died before prctl: no signal would ever come
            os._exit(1)

    return preexec


class ProcessSupervisor:
    """Runs `children` as processes (stdout and stderr piped to it, in their own process
    group, so a terminal's Ctrl-C reaches `up` alone and `up` stops them in order), restarting
    one that dies according to `policy`."""

    def __init__(self, children: Sequence[Child], *, policy: RestartPolicy) -> None:
        self.children = list(children)
        self.policy = policy
        self.failure: ServiceFailed | None = None
        self._stopping = False
        self._on_signals = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._preexec = _die_with_parent()

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def address(self, name: str) -> Address:
        child = next(c for c in self.children if c.name == name)
        assert child.address is not None, f"{name} is not ready"
        return child.address

    def wait_ready(self, timeout_s: float) -> None:
        """Until every child is ready. Stops them all and raises when one cannot start, keeps
        dying, or the time is up, or on an interrupt (KeyboardInterrupt passes through)."""
        try:
            self._until_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(child.ready for child in self.children):
            if self.failure is not None:
                raise self.failure
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotReady([c.name for c in self.children if not c.ready], timeout_s)
            self._step(left)

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT end `supervise` (call from the main thread): the signal's byte
        on the wake-up pipe interrupts the wait."""

        def handle(_signum: int, _frame: FrameType | None) -> None:
            """The byte the interpreter writes to the wake-up pipe does the work."""

        signal.set_wakeup_fd(self._wake_w)
        self._on_signals = True
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def supervise(self) -> None:
        """Restart dying children until `request_stop` (or a signal), or until one keeps dying
        (`failure` says which)."""
        while not self._stopping and self.failure is None:
            self._step(None)

    def request_stop(self) -> None:
        """End `supervise`; safe from any thread."""
        with contextlib.suppress(BlockingIOError):  # the pipe is full of wake-ups already
            os.write(self._wake_w, b"\0")

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> Stopped:
        """SIGTERM every child, wait up to `timeout_s` for them to drain and exit (their
        output still forwarded), SIGKILL those left."""
        self._stopping = True
        for child in self.children:
            child.restart_at_s = None  # a restart still due is not waited for
        for child in self._running():
            assert child.process is not None
            child.process.terminate()
        deadline = time.monotonic() + timeout_s
        failed: list[tuple[str, int]] = []
        # until every child closed its output: it exited, and its last lines are forwarded
        while (
            any(c.open_pipes for c in self.children) and (left := deadline - time.monotonic()) > 0
        ):
            failed += self._step(left)
        killed = tuple(child.name for child in self._running())
        for child in self._running():
            assert child.process is not None
            child.process.kill()
            child.process.wait()
        self._close()
        return Stopped(killed, tuple(failed))

    def _running(self) -> list[Child]:
        return [c for c in self.children if c.process is not None and c.process.poll() is None]

    def _spawn(self, child: Child) -> None:
        child.restart_at_s = None
        child.ready = False
        child.held.clear()
        process = subprocess.Popen(
            child.command,
            env=child.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,
            preexec_fn=self._preexec,  # noqa: PLW1509 (only prctl and getppid run in it)
        )
        child.process = process
        assert process.stdout is not None
        assert process.stderr is not None
        for stream, is_stderr in ((process.stdout, False), (process.stderr, True)):
            os.set_blocking(stream.fileno(), False)
            self._selector.register(stream, selectors.EVENT_READ, _Pipe(child, stream, is_stderr))
        child.open_pipes = 2

    def _step(self, timeout_s: float | None) -> list[tuple[str, int]]:
        """Wait up to `timeout_s` (or the next restart) for output, a death or a wake-up, and
        handle what came; the children that died with an error while stopping."""
        due = [c.restart_at_s for c in self.children if c.restart_at_s is not None]
        if due:
            until_restart = max(0.0, min(due) - time.monotonic())
            timeout_s = until_restart if timeout_s is None else min(timeout_s, until_restart)
        failed: list[tuple[str, int]] = []
        for key, _events in self._selector.select(timeout_s):
            if key.data is None:
                os.read(self._wake_r, 512)
                self._stopping = True
                continue
            pipe: _Pipe = key.data
            data = os.read(key.fd, 65536)
            if data:
                for line in pipe.lines(data):
                    self._line(pipe, line)
            else:
                self._selector.unregister(pipe.stream)
                pipe.stream.close()
                pipe.child.open_pipes -= 1
                if pipe.child.open_pipes == 0:
                    failed += self._reap(pipe.child)
        now = time.monotonic()
        for child in self.children:
            if child.restart_at_s is not None and child.restart_at_s <= now and not self._stopping:
                self._spawn(child)
        return failed

    def _line(self, pipe: _Pipe, line: str) -> None:
        child = pipe.child
        if pipe.stderr:
            if child.ready:
                print(line, file=sys.stderr, flush=True)
            else:
                child.held.append(line)
            return
        address = None if child.ready else ready_address(child.name, line)
        if address is None:
            print(line, flush=True)
            return
        child.ready, child.address = True, address
        child.env[child.port_variable] = str(address.port)
        for held in child.held:
            print(held, file=sys.stderr, flush=True)
        child.held.clear()
        if child.ever_ready:
            log.warning("%s is ready again, at %s", child.name, address)
        child.ever_ready = True

    def _reap(self, child: Child) -> list[tuple[str, int]]:
        """The child closed its output, so it is exiting: its exit code, and what follows."""
        assert child.process is not None
        code = child.process.wait()
        if self._stopping:
            return [] if code in (0, -signal.SIGTERM) else [(child.name, code)]
        if not child.ever_ready and code == MISTAKE_EXIT_CODE and child.held:
            # its one line, `hookline router: ...`, becomes up's: `hookline up: router: ...`
            reason = child.held[-1].removeprefix(f"hookline {child.name}: ")
            self.failure = ServiceFailed(child.name, reason)
            return []
        for held in child.held:  # a bug's traceback, the warnings before a crash
            print(held, file=sys.stderr, flush=True)
        child.ready = False
        now = time.monotonic()
        child.deaths_s.append(now)
        match self.policy.after(child.deaths_s, now):
            case Restart(delay_s):
                log.warning(
                    "%s exited (%s); restarting it in %g s",
                    child.name,
                    exit_description(code),
                    delay_s,
                )
                child.restart_at_s = now + delay_s
            case GiveUp(deaths, window_s):
                self.failure = ServiceFailed(
                    child.name,
                    f"exited {deaths} times within {window_s:g} s (last: {exit_description(code)})",
                )
        return []

    def _close(self) -> None:
        if self._on_signals:
            signal.set_wakeup_fd(-1)
        for key in list(self._selector.get_map().values()):
            if key.data is not None:  # the pipes of a child killed before it closed them
                key.data.stream.close()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def child_environment(base: Mapping[str, str], settings_env: Mapping[str, str]) -> dict[str, str]:
    """A child's environment: `base` (PATH, PYTHONPATH, OTEL_*) without any `HOOKLINE_*` it
    holds, then every resolved setting, so the child reads exactly the settings `up` has."""
    return {k: v for k, v in base.items() if not k.startswith("HOOKLINE_")} | dict(settings_env)
