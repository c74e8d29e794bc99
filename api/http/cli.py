"""`hookline api`: the admin API alone."""

from __future__ import annotations

import argparse

from prometheus_client import CollectorRegistry

from hookline.runtime.commands import Command
from hookline.runtime.settings import Settings
from hookline.runtime.supervisor import run_until_signalled


def api_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap", "database_url", "admin_token", "secret_key")
    from api.http.service import ApiService

    return run_until_signalled(ApiService(settings, CollectorRegistry()))


COMMANDS = (Command("api", "the admin API", api_command),)
