"""`hookline deliverer`: the deliverer alone, draining and committing on SIGTERM."""

from __future__ import annotations

import argparse

from prometheus_client import CollectorRegistry

from hookline.runtime.commands import Command
from hookline.runtime.health import Observed, run_observed
from hookline.runtime.settings import Settings


def deliverer_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap", "secret_key")
    from deliverer.service import Deliverer

    registry = CollectorRegistry()
    group = settings.group("deliverer")
    observed = Observed(
        "deliverer",
        f"consuming {settings.topic('deliveries')} (group {group})",
        default_port=9102,
    )
    return run_observed(observed, Deliverer(settings, registry), settings, registry)


COMMANDS = (Command("deliverer", "signed, isolated, retried HTTP delivery", deliverer_command),)
