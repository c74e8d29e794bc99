"""`hookline deliverer`: the deliverer alone, draining and committing on SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import threading

from prometheus_client import CollectorRegistry, start_http_server

from hookline.runtime.commands import Command
from hookline.runtime.settings import Settings
from hookline.runtime.supervisor import stop_on_signals


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )


def deliverer_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap", "secret_key")
    from deliverer.service import Deliverer

    logging.basicConfig(level=os.environ.get("HOOKLINE_LOG_LEVEL", "WARNING").upper())
    registry = CollectorRegistry()
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, registry=registry)
    stopping = threading.Event()
    stop_on_signals(stopping)
    Deliverer(settings, registry).run(stopping)
    return 0


COMMANDS = (
    Command("deliverer", "signed, isolated, retried HTTP delivery", deliverer_command, _flags),
)
