"""`hookline projector`: deliveries, attempts and dead letters into PostgreSQL."""

from __future__ import annotations

import argparse

from prometheus_client import CollectorRegistry

from hookline.runtime.commands import Command
from hookline.runtime.settings import Settings
from hookline.runtime.supervisor import run_until_signalled


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the history tables and rebuild them from the topics (stop other projectors)",
    )


def projector_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap", "database_url")
    from api.projector.service import Projector

    projector = Projector(settings, CollectorRegistry(), rebuild=bool(args.rebuild))
    return run_until_signalled(projector)


COMMANDS = (
    Command(
        "projector",
        "deliveries, attempts and dead letters into PostgreSQL",
        projector_command,
        _flags,
    ),
)
