"""`hookline projector`: deliveries, attempts and dead letters into PostgreSQL."""

from __future__ import annotations

import argparse

from prometheus_client import CollectorRegistry

from hookline.runtime.commands import Command
from hookline.runtime.health import Observed, run_observed
from hookline.runtime.priority import yield_cpu_to_webhooks
from hookline.runtime.settings import Settings


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the history tables and rebuild them from the topics (stop other projectors)",
    )


def projector_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap", "database_url")
    yield_cpu_to_webhooks()
    from api.projector.service import Projector

    registry = CollectorRegistry()
    projector = Projector(settings, registry, rebuild=bool(args.rebuild))
    group = settings.group("projector")
    topics = ", ".join(settings.topic(t) for t in ("deliveries", "attempts", "dead-letters"))
    observed = Observed(
        "projector",
        f"consuming {topics} (group {group}) into PostgreSQL",
        default_port=9103,
    )
    return run_observed(observed, projector, settings, registry)


COMMANDS = (
    Command(
        "projector",
        "deliveries, attempts and dead letters into PostgreSQL",
        projector_command,
        _flags,
    ),
)
