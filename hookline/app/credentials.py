"""Credentials of the local platform: `hookline up` and `demo` generate an admin token and a
secret key into the local data folder on first start and reuse them afterwards."""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from hookline.runtime.settings import Secret, Settings


def with_local_credentials(settings: Settings, folder: Path) -> Settings:
    """Fill in the admin token and secret key from `folder`, creating them when missing."""
    if settings.admin_token is not None and settings.secret_key is not None:
        return settings
    path = folder / "credentials.json"
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    if "admin_token" not in stored or "secret_key" not in stored:
        stored = {
            "admin_token": "hl_admin_" + secrets.token_urlsafe(32),
            "secret_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        }
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(stored, handle)
    return settings.with_changes(
        admin_token=settings.admin_token or Secret(stored["admin_token"]),
        secret_key=settings.secret_key or Secret(stored["secret_key"]),
    )
