"""Credentials of the local platform, kept in one file of the local data folder (mode 0600):
the admin token and secret key that `hookline up` and `demo` generate, and the passwords of
the local PostgreSQL and of the local Kafka's SCRAM user. Each is generated on first use and
reused afterwards."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hookline.runtime.settings import Secret, Settings

FILE = "credentials.json"


@dataclass(frozen=True, slots=True)
class DatabasePasswords:
    """The local PostgreSQL's two roles: its superuser, which only the stack uses to set the
    server up, and hookline's own role, whose password goes into the services' URL."""

    superuser: str
    hookline: str


def with_local_credentials(settings: Settings, folder: Path) -> Settings:
    """Fill in the admin token and secret key from `folder`, creating them when missing."""
    if settings.admin_token is not None and settings.secret_key is not None:
        return settings
    stored = _credentials(
        folder,
        admin_token=lambda: "hl_admin_" + secrets.token_urlsafe(32),
        secret_key=lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    return settings.with_changes(
        admin_token=settings.admin_token or Secret(stored["admin_token"]),
        secret_key=settings.secret_key or Secret(stored["secret_key"]),
    )


def local_database_passwords(folder: Path) -> DatabasePasswords:
    """The passwords of the local PostgreSQL whose stack lives in `folder`."""
    stored = _credentials(
        folder,
        database_superuser_password=lambda: secrets.token_urlsafe(32),
        database_password=lambda: secrets.token_urlsafe(32),
    )
    return DatabasePasswords(stored["database_superuser_password"], stored["database_password"])


def local_kafka_password(folder: Path) -> str:
    """The SCRAM password of the local Kafka's secure listener (`stack start --secure`)."""
    return _credentials(folder, kafka_scram_password=lambda: secrets.token_urlsafe(32))[
        "kafka_scram_password"
    ]


def _credentials(folder: Path, **generators: Callable[[], str]) -> dict[str, str]:
    """Every credential of `folder`'s file, with the named ones generated where missing."""
    path = folder / FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = {name: make() for name, make in generators.items() if name not in stored}
    if missing:
        stored |= missing
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(stored, handle)
    return stored
