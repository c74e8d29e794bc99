"""`hookline outbox-relay`: publish the committed rows of a service's PostgreSQL outbox."""

from __future__ import annotations

import argparse
import logging
import os
import threading

import psycopg

from hookline.runtime.commands import Command
from hookline.runtime.settings import Settings
from hookline.runtime.supervisor import stop_on_signals
from producers.errors import OutboxError
from producers.outbox import OutboxRelay, create_outbox_table


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--outbox-dsn",
        default=os.environ.get("HOOKLINE_OUTBOX_DSN"),
        help="the service database holding the outbox table (HOOKLINE_OUTBOX_DSN); "
        "default: HOOKLINE_DATABASE_URL",
    )
    parser.add_argument(
        "--create-table", action="store_true", help="create the outbox table if missing"
    )


def outbox_relay_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap")
    dsn: str | None = args.outbox_dsn
    if dsn is None:
        settings.require("database_url")
        assert settings.database_url is not None
        dsn = settings.database_url.value
    logging.basicConfig(
        level=os.environ.get("HOOKLINE_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.create_table:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                create_outbox_table(conn)
        except psycopg.Error as exc:
            raise OutboxError(f"cannot create the table: {exc}") from exc
    stopping = threading.Event()
    stop_on_signals(stopping)
    OutboxRelay(settings, dsn).run(stopping)
    return 0


COMMANDS = (
    Command(
        "outbox-relay",
        "publish a PostgreSQL outbox to hookline.events",
        outbox_relay_command,
        _configure,
    ),
)
