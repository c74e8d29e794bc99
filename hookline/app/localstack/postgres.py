"""A PostgreSQL server of the project's own, in a folder of the data directory.

Uses the machine's PostgreSQL binaries (Debian's packages, installed when missing). Tuned for
a disposable local stack: fsync off, TCP on loopback only. When run as root the server runs as
the `postgres` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg

from hookline.app.localstack.process import (
    folder_lock,
    free_port,
    port_is_free,
    read_state,
    wait_for,
    write_state,
)
from hookline.runtime.errors import LocalStackError

DATABASE: Final = "hookline"
USER: Final = "hookline"
SERVER_USER: Final = "postgres"

_CONF: Final = """
# written by hookline's local stack: a disposable development server
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 128MB
log_min_messages = warning
"""


@dataclass(frozen=True, slots=True)
class RunningPostgres:
    url: str
    port: int
    reused: bool


def _bin_dir() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    return _install()


def _install() -> Path:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise LocalStackError("postgres", "PostgreSQL is not installed; apt-get install postgresql")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise LocalStackError(
                "postgres", f"{' '.join(command[:2])} failed: {result.stderr.strip()[-300:]}"
            )
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not candidates:
        raise LocalStackError("postgres", "installed postgresql but found no pg_ctl")
    return Path(candidates[-1]).parent


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SERVER_USER, "--", *command]


def _ensure_server_user(folder: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True)
        entry = pwd.getpwnam(SERVER_USER)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    # the server user must be able to reach its folder through every parent
    for parent in folder.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(_as_server_user(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalStackError("postgres", f"{what} failed: {result.stderr.strip()[-400:]}")


def _url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://{USER}@127.0.0.1:{port}/{database}"


def _answers(port: int) -> bool:
    try:
        with psycopg.connect(_url(port, "postgres"), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def start_postgres(data: Path, *, timeout_s: float = 60.0) -> RunningPostgres:
    """Start the server in `data`, or reuse the one already running there."""
    data = data.resolve()
    with folder_lock(data):
        cluster = data / "cluster"
        state = read_state(data / "state.json")
        if state is not None and _answers(int(state["port"])):
            return RunningPostgres(_url(int(state["port"])), int(state["port"]), reused=True)
        bin_dir = _bin_dir()
        _ensure_server_user(data)
        if not (cluster / "PG_VERSION").exists():
            _run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(cluster),
                    "-U",
                    USER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                "initdb",
            )
        port = int(state["port"]) if state and port_is_free(int(state["port"])) else free_port()
        (cluster / "postgresql.auto.conf").write_text(_CONF.format(port=port))
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(cluster / "postgresql.auto.conf", entry.pw_uid, entry.pw_gid)
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(cluster),
                "-l",
                str(data / "postgres.log"),
                "-w",
                "-t",
                str(int(timeout_s)),
                "start",
            ],
            "pg_ctl start",
        )
        write_state(data / "state.json", {"port": port})
        if not wait_for(lambda: True if _answers(port) else None, timeout_s=timeout_s):
            raise LocalStackError("postgres", f"did not answer; see {data / 'postgres.log'}")
        _create_database(port)
        return RunningPostgres(_url(port), port, reused=False)


def _create_database(port: int) -> None:
    with psycopg.connect(_url(port, "postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if exists is None:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def stop_postgres(data: Path) -> bool:
    cluster = data.resolve() / "cluster"
    if not (cluster / "postmaster.pid").exists():
        return False
    _run([str(_bin_dir() / "pg_ctl"), "-D", str(cluster), "-m", "fast", "-w", "stop"], "stop")
    return True
