"""A PostgreSQL server of the project's own, in a folder of the data directory.

Uses the machine's PostgreSQL binaries (Debian's packages, installed when missing). Tuned for
a disposable local stack: fsync off, TCP on loopback only. Still, any local user reaches
loopback, so every connection needs a password (scram-sha-256), and the services connect as
`hookline`, a role that owns only its database, never as the superuser. When run as root the
server runs as the `postgres` system user, since PostgreSQL refuses to run as root.
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
from psycopg import sql
from psycopg.conninfo import make_conninfo

from hookline.app.credentials import DatabasePasswords
from hookline.app.localstack.process import (
    PRIVATE_UMASK,
    folder_lock,
    free_port,
    make_private,
    pid_alive,
    port_is_free,
    read_state,
    wait_for,
    write_state,
)
from hookline.runtime.errors import LocalStackError

DATABASE: Final = "hookline"
USER: Final = "hookline"
SUPERUSER: Final = "postgres"
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
password_encryption = scram-sha-256
"""

_HBA: Final = """
# written by hookline's local stack: every connection proves its role's password
host all all 127.0.0.1/32 scram-sha-256
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
    make_private(folder)
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
    result = subprocess.run(
        _as_server_user(command), capture_output=True, text=True, check=False, umask=PRIVATE_UMASK
    )
    if result.returncode != 0:
        raise LocalStackError("postgres", f"{what} failed: {result.stderr.strip()[-400:]}")


def _url(port: int, password: str, *, user: str = USER, database: str = DATABASE) -> str:
    return f"postgresql://{user}:{password}@127.0.0.1:{port}/{database}"


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def start_postgres(
    data: Path, *, passwords: DatabasePasswords, timeout_s: float = 60.0
) -> RunningPostgres:
    """Start the server in `data`, or reuse the one already running there."""
    data = data.resolve()
    with folder_lock(data):
        cluster = data / "cluster"
        state = read_state(data / "state.json")
        if state is not None:
            port = int(state["port"])
            if _answers(_url(port, passwords.hookline)):
                return RunningPostgres(_url(port, passwords.hookline), port, reused=True)
        bin_dir = _bin_dir()
        _ensure_server_user(data)
        if not (cluster / "PG_VERSION").exists():
            _initdb(bin_dir, data, passwords.superuser)
        port = int(state["port"]) if state and port_is_free(int(state["port"])) else free_port()
        _write_server_file(cluster / "postgresql.auto.conf", _CONF.format(port=port))
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
        superuser = _superuser(data)
        password = passwords.hookline if superuser == USER else passwords.superuser
        admin = _url(port, password, user=superuser, database="postgres")
        if not wait_for(lambda: True if _answers(admin) else None, timeout_s=timeout_s):
            raise LocalStackError("postgres", f"did not answer; see {data / 'postgres.log'}")
        if superuser == USER:
            _require_passwords(admin, cluster, passwords.hookline)
        else:
            _create_database(port, passwords)
        return RunningPostgres(_url(port, passwords.hookline), port, reused=False)


def _initdb(bin_dir: Path, data: Path, superuser_password: str) -> None:
    pwfile = data / "superuser.pw"
    _write_server_file(pwfile, superuser_password)
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data / "cluster"),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
    finally:
        pwfile.unlink()
    _write_server_file(data / "cluster" / "pg_hba.conf", _HBA)
    (data / "superuser").write_text(SUPERUSER)


def _superuser(data: Path) -> str:
    """The role initdb made: `postgres`, or `hookline` itself in a folder from before the
    services had a role of their own (that folder has no record of it)."""
    record = data / "superuser"
    return record.read_text().strip() if record.exists() else USER


def _write_server_file(path: Path, text: str) -> None:
    """A file of the server's own: written readable by the server's user only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _create_database(port: int, passwords: DatabasePasswords) -> None:
    """hookline's role, its password, and the one database it owns (the API and projector
    create their schemas in it); never a superuser, nor allowed to make roles or databases."""
    role = sql.Identifier(USER)
    admin = _url(port, passwords.superuser, user=SUPERUSER, database="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER,)).fetchone()
        conn.execute(
            sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                sql.SQL("ALTER" if exists else "CREATE"), role, sql.Literal(passwords.hookline)
            )
        )
        _ensure_database(conn)
    with psycopg.connect(_url(port, passwords.superuser, user=SUPERUSER), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(role))


def _require_passwords(admin_url: str, cluster: Path, password: str) -> None:
    """Upgrade a folder made before password authentication: its role gets the password and
    the server stops trusting every local user. The role stays the superuser (PostgreSQL
    keeps the role that ran initdb one); a new folder gives the services a role of their own."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(USER), sql.Literal(password))
        )
        _ensure_database(conn)
        _write_server_file(cluster / "pg_hba.conf", _HBA)
        conn.execute("SELECT pg_reload_conf()")
    # the postmaster reloads on its own time: done once it asks for a password
    trusting = make_conninfo(admin_url, password="", passfile="/nonexistent")
    if not wait_for(lambda: None if _answers(trusting) else True, timeout_s=30.0):
        raise LocalStackError("postgres", "still trusts every local user after a reload")


def _ensure_database(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
    if exists is None:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DATABASE), sql.Identifier(USER)
            )
        )


def postgres_pid(data: Path) -> int | None:
    """The pid of the server running in `data`, if one runs (its postmaster.pid's first line;
    a file left by a crash names a dead process)."""
    try:
        first = (data.resolve() / "cluster" / "postmaster.pid").read_text().split("\n", 1)[0]
        pid = int(first)
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def stop_postgres(data: Path) -> bool:
    cluster = data.resolve() / "cluster"
    if not (cluster / "postmaster.pid").exists():
        return False
    _run([str(_bin_dir() / "pg_ctl"), "-D", str(cluster), "-m", "fast", "-w", "stop"], "stop")
    return True
