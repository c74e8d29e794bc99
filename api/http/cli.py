"""`hookline api`: the admin API alone."""

from __future__ import annotations

import argparse

from prometheus_client import CollectorRegistry

from hookline.runtime.commands import Command
from hookline.runtime.health import run_announced
from hookline.runtime.openfiles import OWN_FILES, within_open_files
from hookline.runtime.settings import Settings


def api_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap", "database_url", "admin_token", "secret_key")
    from api.http.service import ApiService

    settings = within_open_files(settings, reserved=OWN_FILES)
    service = ApiService(settings, CollectorRegistry())

    def line() -> str:  # the bound port: HOOKLINE_API_PORT=0 takes any free one
        where = f"{settings.api_host}:{service.port}"
        return f"api ready: listening on {where} (/metrics, /healthz and /readyz there too)"

    return run_announced(service, line)


COMMANDS = (Command("api", "the admin API", api_command),)
