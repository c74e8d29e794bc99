"""The one logging set-up of every `hookline` command: one format on stderr, one level setting.

Every record is written as exactly one line: control characters in a message or a traceback
(a newline in a request path, an escape sequence in a peer's error) are escaped, so a value
from outside can never forge a line of its own.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Final

from hookline.runtime.kafka import LIBRDKAFKA_LOGGER
from hookline.runtime.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: everything a
# terminal or a log reader may take for the end of a line or a command
_CONTROLS: Final = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
_ESCAPES: Final = {
    code: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(chr(code), f"\\u{code:04x}")
    for code in _CONTROLS
}


def escape_controls(text: str) -> str:
    """`text` with every control character written as its backslash escape."""
    return text.translate(_ESCAPES)


class OneLineFormatter(logging.Formatter):
    """The text format, escaped as a whole: the message, and a traceback's own newlines too,
    stay on the record's one line."""

    def __init__(self) -> None:
        super().__init__(FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the traceback if any.

    The standard library's encoder escapes every control character (and, as ASCII, the Unicode
    line separators) itself; four fields do not call for a dependency."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line)


def log_formatter(settings: Settings) -> logging.Formatter:
    """The formatter of `settings.log_format`, for stderr and for tests that read the log."""
    return JsonFormatter() if settings.log_format == "json" else OneLineFormatter()


def configure_logging(settings: Settings) -> None:
    """Log at `settings.log_level` to stderr; called once, by the command line, per process."""
    handler = logging.StreamHandler()
    handler.setFormatter(log_formatter(settings))
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    if settings.log_level != "DEBUG":
        # librdkafka reports every refused reconnect at error level while the clients retry
        # them (RepeatFilter only thins the repeats): its lines are for debugging
        LIBRDKAFKA_LOGGER.setLevel(logging.CRITICAL)
