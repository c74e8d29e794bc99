"""Regression: a `%0a` in a request's path wrote a forged `CRITICAL ...` line into the log.

The path reaches the log twice: aiohttp's access log, and the API's line about an unhandled
error (made here by dropping the history tables under a running API, so the delivery lookup
fails)."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from api.http.app import create_app
from hookline.runtime.logs import log_formatter
from hookline.runtime.settings import Settings
from hookline.runtime.topics import ensure_topics
from tests.conftest import Services
from tests.integration.api.conftest import drop_schema, make_settings

pytestmark = pytest.mark.integration

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@pytest.fixture
def log_settings(services: Services) -> Iterator[Settings]:
    settings = make_settings(services)
    ensure_topics(settings)
    yield settings
    drop_schema(settings)


@pytest.fixture
def log_output(log_settings: Settings) -> Iterator[io.StringIO]:
    """What the process's own formatter writes, from every logger, access log included."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter(log_settings))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.setLevel(level)
    root.removeHandler(handler)


async def test_a_newline_in_a_path_forges_no_log_line(
    log_settings: Settings, log_output: io.StringIO
) -> None:
    app = create_app(log_settings, CollectorRegistry())
    async with TestClient(TestServer(app)) as client:
        drop_schema(log_settings)  # the delivery lookup now fails: an unhandled error
        path = "/v1/deliveries/%0aCRITICAL%20hookline.supervisor:%20forged"
        assert log_settings.admin_token is not None
        admin = {"Authorization": f"Bearer {log_settings.admin_token.value}"}
        response = await client.get(path, headers=admin)
        assert response.status == 500
    lines = log_output.getvalue().splitlines()
    logged = [line for line in lines if "forged" in line]
    assert any(" ERROR api.http.app: unhandled error on GET " in line for line in logged), lines
    assert any(" INFO aiohttp.access: " in line for line in logged), lines
    assert all(TIMESTAMP.match(line) for line in lines), lines
    assert "\\nCRITICAL hookline.supervisor: forged" in "".join(logged)
