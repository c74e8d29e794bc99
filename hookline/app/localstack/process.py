"""Small process and port helpers shared by the local Kafka and PostgreSQL starters."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, TypeVar

T = TypeVar("T")

# the umask of the servers' processes: their data, logs and configuration are their owner's
PRIVATE_UMASK: Final = 0o077


def make_private(folder: Path) -> None:
    """Only the owner may list, read or enter `folder` (data written before stays behind it)."""
    folder.chmod(0o700)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on `port` of `host` now (every address `host` names).

    SO_REUSEADDR, as the servers themselves bind (the JVM, PostgreSQL, asyncio): connections
    of a server that just died linger in TIME_WAIT on its port, and would otherwise make its
    port look taken, so a restarted broker moved to new ports under its clients' feet. Only
    "address in use" counts as taken: any other refusal is left to the server's own bind."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return True
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); read its state to tell
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def read_state(path: Path) -> dict[str, int | str] | None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(path: Path, state: dict[str, int | str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Serialise starts in one data folder, so two runs never start two brokers on it."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout_s: float,
    interval_s: float = 0.2,
    alive: Callable[[], bool] = lambda: True,
) -> T | None:
    """Poll `probe` until it returns a value, the deadline passes, or `alive` says no."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        if not alive():
            return None
        time.sleep(interval_s)
    return None


def terminate(pid: int, *, timeout_s: float = 20.0) -> None:
    """SIGTERM, wait, then SIGKILL."""
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    if wait_for(lambda: True if not pid_alive(pid) else None, timeout_s=timeout_s) is None:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            return
        wait_for(lambda: True if not pid_alive(pid) else None, timeout_s=5.0)
