"""The local stack's PostgreSQL and Kafka, started in a folder of this module's own: every
connection needs the password, the services' role is no superuser, and the data folders are
their owner's alone. Regression for a stack that trusted every local user as a superuser and
left Kafka's data world-readable."""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from api.model.db import connect
from hookline.app.credentials import local_database_passwords
from hookline.app.localstack import postgres as local_postgres
from hookline.app.localstack.stack import LocalStack, start_stack, stop_stack
from hookline.runtime.settings import Secret, Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("stack")
    yield folder
    stop_stack(folder)


@pytest.fixture(scope="module")
def stack(stack_dir: Path) -> LocalStack:
    return start_stack(stack_dir, cache_dir=Settings.load().cache_dir)


def _connect_as(url: str, **changes: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection with `changes` to `url`'s parameters and no password file to fall back on."""
    nowhere = "/nonexistent/pgpass"
    return psycopg.connect(make_conninfo(url, passfile=nowhere, connect_timeout=5, **changes))


@pytest.mark.parametrize("user", ["hookline", "postgres"])
def test_connecting_without_the_right_password_is_refused(stack: LocalStack, user: str) -> None:
    url = stack.database_url
    for password in ("", "wrong-" + uuid.uuid4().hex):
        with pytest.raises(psycopg.OperationalError, match="password"):
            _connect_as(url, user=user, password=password).close()
    with _connect_as(url) as conn:  # the URL the stack reports carries the password
        assert conn.execute("SELECT current_user").fetchone() == ("hookline",)


def test_the_services_role_is_no_superuser_and_owns_its_database(stack: LocalStack) -> None:
    with _connect_as(stack.database_url) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == (False, False, False)
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        assert owner == ("hookline",)
    # the API and the projector create their schema and tables as that role
    schema = f"t{uuid.uuid4().hex[:10]}"
    settings = Settings(database_url=Secret(stack.database_url), topic_prefix=schema)
    with connect(settings) as conn:
        assert conn.execute("SELECT to_regclass('deliveries') IS NOT NULL").fetchone() == (True,)


def test_a_second_start_reuses_the_server_and_its_password(
    stack: LocalStack, stack_dir: Path
) -> None:
    again = start_stack(stack_dir, cache_dir=Settings.load().cache_dir)
    assert again.reused
    assert again.database_url == stack.database_url


def test_the_data_folders_are_their_owners_alone(stack: LocalStack, stack_dir: Path) -> None:
    folders = ["kafka", "kafka/logs", "postgres", "postgres/cluster"]
    modes = {name: stat.S_IMODE((stack_dir / name).stat().st_mode) for name in folders}
    assert modes == dict.fromkeys(folders, 0o700)
    assert stat.S_IMODE((stack_dir / "credentials.json").stat().st_mode) == 0o600


def test_a_folder_from_before_passwords_is_upgraded_on_start(tmp_path: Path) -> None:
    data = tmp_path / "postgres"
    data.mkdir()
    # the folder as the stack made it before: initdb's role is hookline, trusting everyone
    local_postgres._ensure_server_user(data)
    local_postgres._run(
        [
            str(local_postgres._bin_dir() / "initdb"),
            *("-D", str(data / "cluster"), "-U", "hookline", "--auth=trust", "--no-sync"),
        ],
        "initdb",
    )
    passwords = local_database_passwords(tmp_path)
    try:
        url = local_postgres.start_postgres(data, passwords=passwords).url
        with pytest.raises(psycopg.OperationalError, match="password"):
            _connect_as(url, password="").close()
        with _connect_as(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
    finally:
        local_postgres.stop_postgres(data)
