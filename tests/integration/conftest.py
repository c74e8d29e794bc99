"""Fixtures shared by the integration tests of every service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hookline.runtime.codecs import CodecRuntime, open_codec
from hookline.runtime.settings import Settings
from hookline.runtime.topics import ensure_topics


@pytest.fixture
def runtime(settings: Settings) -> Iterator[CodecRuntime]:
    """The codec runtime (schema registry and record codec) over this test's fresh topics."""
    ensure_topics(settings)
    runtime = open_codec(settings, client_id="test-codec")
    yield runtime
    runtime.close()
