"""`hookline replayer`: runs replay and recover jobs."""

from __future__ import annotations

import argparse

from prometheus_client import CollectorRegistry

from hookline.runtime.commands import Command
from hookline.runtime.health import Observed, run_observed
from hookline.runtime.priority import yield_cpu_to_webhooks
from hookline.runtime.settings import Settings


def replayer_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap", "database_url")
    yield_cpu_to_webhooks()
    from api.replayer.service import Replayer

    registry = CollectorRegistry()
    observed = Observed(
        "replayer",
        f"consuming {settings.topic('control')} (group {settings.topic('replayer')})",
        default_port=9104,
    )
    return run_observed(observed, Replayer(settings, registry), settings, registry)


COMMANDS = (Command("replayer", "runs replay and recover jobs", replayer_command),)
