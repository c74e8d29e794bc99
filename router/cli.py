"""`hookline router`: one router process (any number side by side share the work)."""

from __future__ import annotations

import argparse

from prometheus_client import CollectorRegistry

from hookline.runtime.commands import Command
from hookline.runtime.health import Observed, run_observed
from hookline.runtime.settings import Settings
from router.service import (
    DEFAULT_BATCH_INTERVAL_S,
    DEFAULT_BATCH_LINGER_S,
    DEFAULT_BATCH_MAX_EVENTS,
    Router,
)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-max-events",
        type=int,
        default=DEFAULT_BATCH_MAX_EVENTS,
        help="events per transaction at most",
    )
    parser.add_argument(
        "--batch-linger-ms",
        type=_non_negative_ms,
        default=round(DEFAULT_BATCH_LINGER_S * 1000),
        help="the longest a batch gathers events after its first one (default: %(default)s),"
        " reached at high rates; an idle router gathers nothing: more is fewer transactions"
        " under load",
    )
    parser.add_argument(
        "--batch-interval-ms",
        type=_non_negative_ms,
        default=round(DEFAULT_BATCH_INTERVAL_S * 1000),
        help="the least time between two batches' starts under load (default:"
        " %(default)s): at most 1000/this transactions a second; at lower rates the"
        " spacing shrinks with the rate; more is fewer transactions (less CPU) for more"
        " latency under load",
    )


def _non_negative_ms(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of milliseconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def router_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap")
    registry = CollectorRegistry()
    router = Router(
        settings,
        registry,
        client_id=settings.instance_id,
        batch_max_events=args.batch_max_events,
        batch_linger_s=args.batch_linger_ms / 1000,
        batch_interval_s=args.batch_interval_ms / 1000,
    )
    group = settings.group("router")
    observed = Observed(
        "router",
        f"consuming {settings.topic('events')} (group {group})",
        default_port=9101,
    )
    return run_observed(observed, router, settings, registry)


COMMANDS = (
    Command(
        "router", "route events to subscriptions, in Kafka transactions", router_command, _configure
    ),
)
