"""The one logging set-up of every `hookline` command: one format on stderr, one level setting."""

from __future__ import annotations

import logging

from hookline.runtime.kafka import LIBRDKAFKA_LOGGER
from hookline.runtime.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(settings: Settings) -> None:
    """Log at `settings.log_level` to stderr; called once, by the command line, per process."""
    logging.basicConfig(level=settings.log_level, format=FORMAT)
    if settings.log_level != "DEBUG":
        # librdkafka reports every refused reconnect at error level while the clients retry
        # them (RepeatFilter only thins the repeats): its lines are for debugging
        LIBRDKAFKA_LOGGER.setLevel(logging.CRITICAL)
