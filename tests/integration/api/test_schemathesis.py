"""Schemathesis against the live API's own `/openapi.json`: no 5xx, and every response
matches the document (status codes, content types, bodies)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from api.http.service import ApiService
from hookline.runtime.settings import Settings
from tests.conftest import Services
from tests.integration.api.conftest import drop_schema, make_settings
from tests.waiting import eventually

pytestmark = pytest.mark.integration

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
)
MAX_EXAMPLES = os.environ.get("HOOKLINE_SCHEMATHESIS_EXAMPLES", "15")


@pytest.fixture
def live_api(services: Services) -> Iterator[tuple[Settings, int]]:
    from hookline.runtime.topics import ensure_topics

    settings = make_settings(services, api_port=0)
    ensure_topics(settings)
    service = ApiService(settings, CollectorRegistry())
    stopping = threading.Event()
    thread = threading.Thread(target=service.run, args=(stopping,))
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the API stopped"
        return service.ready

    eventually(started, "the API is ready", timeout_s=60)
    assert service.port is not None
    yield settings, service.port
    stopping.set()
    thread.join(30)
    drop_schema(settings)


def test_schemathesis_finds_no_server_error_or_nonconformance(
    live_api: tuple[Settings, int], tmp_path: Path
) -> None:
    settings, port = live_api
    assert settings.admin_token is not None
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"http://127.0.0.1:{port}/openapi.json",
        "--header",
        f"Authorization: Bearer {settings.admin_token.value}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--mode",
        "positive",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        "1",
        "--workers",
        "4",
        "--no-shrink",
        "--request-timeout",
        "40",
        "--suppress-health-check",
        "all",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=170, cwd=tmp_path, check=False
    )
    output = result.stdout + result.stderr
    Path(os.environ.get("HOOKLINE_SCHEMATHESIS_LOG", tmp_path / "schemathesis.log")).write_text(
        output
    )
    assert result.returncode == 0, output[-6000:]
