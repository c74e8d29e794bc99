"""The log formats: a value from outside never forges a line of its own, and the JSON format
is one object per line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from hookline.runtime.logs import escape_controls, log_formatter
from hookline.runtime.settings import Settings


@pytest.fixture
def captured(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of this test's own writing through the real formatter of `request.param`."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter(Settings(log_format=request.param)))
    logger = logging.getLogger(f"hookline.test.{request.node.name}")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def _fail(message: str) -> None:
    raise ValueError(message)


def test_control_characters_are_escaped() -> None:
    assert escape_controls("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert escape_controls("\x1b[31mred\x00") == "\\u001b[31mred\\u0000"
    assert escape_controls("\x7f\x85\u2028\u2029") == "\\u007f\\u0085\\u2028\\u2029"
    assert escape_controls("plain, ünïcode \\n kept") == "plain, ünïcode \\n kept"


@pytest.mark.parametrize("captured", ["text"], indirect=True)
def test_a_text_record_is_one_line_whatever_its_values_and_traceback(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    forged = "/v1/x\nCRITICAL hookline.supervisor: forged\r\n"
    logger.warning("unhandled error on GET %s", forged)
    try:
        _fail(forged)
    except ValueError:
        logger.exception("failed on %s", forged)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert all(" hookline.test." in line for line in lines), lines
    assert "GET /v1/x\\nCRITICAL hookline.supervisor: forged\\r\\n" in lines[0]
    assert "\\nTraceback (most recent call last):\\n" in lines[1]


@pytest.mark.parametrize("captured", ["json"], indirect=True)
def test_the_json_format_is_one_object_per_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.warning("path %s", "/a\nCRITICAL forged\u2028")
    try:
        _fail("boom")
    except ValueError:
        logger.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING"
    assert first["logger"] == logger.name
    assert first["message"] == "path /a\nCRITICAL forged\u2028"
    assert "time" in first
    assert second["level"] == "ERROR"
    assert second["message"] == "failed"
    assert second["exception"].endswith("ValueError: boom")
