"""Sub-commands of the API package: `hookline api`, `hookline projector`, `hookline replayer`."""

from __future__ import annotations

import argparse
import threading

from prometheus_client import CollectorRegistry

from hookline.cli import service_command
from hookline.settings import Settings
from hookline.supervisor import Service, stop_on_signals


def _run(service: Service) -> int:
    stopping = threading.Event()
    stop_on_signals(stopping)
    service.run(stopping)
    return 0


@service_command("api", "the admin API")
def api_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap", "database_url", "admin_token", "secret_key")
    from api.service import ApiService

    return _run(ApiService(settings, CollectorRegistry()))


def _projector_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the history tables and rebuild them from the topics (stop other projectors)",
    )


@service_command(
    "projector", "deliveries, attempts and dead letters into PostgreSQL", _projector_flags
)
def projector_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap", "database_url")
    from api.projector import Projector

    return _run(Projector(settings, CollectorRegistry(), rebuild=bool(args.rebuild)))


@service_command("replayer", "runs replay, recover and redeliver jobs")
def replayer_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap", "database_url")
    from api.replayer import Replayer

    return _run(Replayer(settings, CollectorRegistry()))
