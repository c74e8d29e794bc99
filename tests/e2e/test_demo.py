"""`hookline demo` as a newcomer runs it: the story told on whatever port is free, and nothing
left behind that a later `hookline up` would keep retrying."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from hookline.runtime.kafka import reader_config
from hookline.runtime.settings import Settings
from hookline.runtime.table import TopicReader
from tests.conftest import Services
from tests.e2e.conftest import HOOKLINE

pytestmark = pytest.mark.e2e


def _latest_by_key(settings: Settings, topic: str) -> dict[str, bytes | None]:
    reader = TopicReader(reader_config(settings, client_id="test-demo"), topic)
    try:
        latest: dict[str, bytes | None] = {}
        for message in reader.read_to_end():
            key = message.key()
            assert key is not None
            latest[key.decode()] = message.value()
        return latest
    finally:
        reader.close()


def test_the_demo_takes_a_free_port_and_deletes_its_subscriptions(
    services: Services, fresh_prefix: str, tmp_path: Path
) -> None:
    """Regressions: the demo's closing commands pointed at the platform it had just stopped,
    and its three subscriptions stayed active, aimed at its dead receiver, for a later `up`
    to retry for more than a day."""
    prefix = fresh_prefix
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = clean | {
            "HOOKLINE_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
            "HOOKLINE_DATABASE_URL": services.database_url,
            "HOOKLINE_TOPIC_PREFIX": prefix,
            "HOOKLINE_PARTITIONS": "1",
            "HOOKLINE_REPLICATION_FACTOR": "1",
            "HOOKLINE_MIN_INSYNC_REPLICAS": "1",
            "HOOKLINE_DATA_DIR": str(tmp_path),
            "HOOKLINE_API_PORT": str(port),
        }
        result = subprocess.run(
            [HOOKLINE, "demo"], env=env, capture_output=True, text=True, timeout=170, check=False
        )
    assert result.returncode == 0, result
    out = result.stdout
    assert f"(port {port} is taken, so the demo took a free one)" in out
    assert "every delivery arrived and every signature verified." in out
    assert "deleted the demo's 3 subscriptions" in out
    assert "while `hookline up` runs" not in out
    assert "start the platform with `hookline up`" in out
    assert f"kept in {tmp_path / 'local' / 'credentials.json'}" in out
    assert f"http://127.0.0.1:{port}/v1/deliveries?subscription_id=" in out

    settings = Settings(kafka_bootstrap=services.kafka_bootstrap, topic_prefix=prefix)
    subscriptions = _latest_by_key(settings, settings.topic("subscriptions"))
    assert len(subscriptions) == 3
    assert all(value is None for value in subscriptions.values()), "a subscription remains"
