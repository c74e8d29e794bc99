"""`hookline outbox-relay`: publish the committed rows of a service's PostgreSQL outbox."""

from __future__ import annotations

import argparse

import psycopg
from prometheus_client import CollectorRegistry

from hookline.runtime.commands import Command
from hookline.runtime.errors import SettingsError
from hookline.runtime.health import Observed, run_observed
from hookline.runtime.settings import Settings
from producers.errors import OutboxError
from producers.outbox import OutboxRelay, create_outbox_table


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--create-table", action="store_true", help="create the outbox table if missing"
    )


def outbox_relay_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap")
    outbox = settings.outbox_dsn or settings.database_url
    if outbox is None:
        raise SettingsError("HOOKLINE_OUTBOX_DSN", "is required (or HOOKLINE_DATABASE_URL)")
    dsn = outbox.value
    if args.create_table:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                create_outbox_table(conn)
        except psycopg.Error as exc:
            raise OutboxError(f"cannot create the table: {exc}") from exc
    observed = Observed(
        "outbox-relay",
        f"relaying its PostgreSQL outbox to {settings.topic('events')}",
        default_port=9105,
    )
    return run_observed(observed, OutboxRelay(settings, dsn), settings, CollectorRegistry())


COMMANDS = (
    Command(
        "outbox-relay",
        "publish a PostgreSQL outbox to hookline.events",
        outbox_relay_command,
        _configure,
    ),
)
