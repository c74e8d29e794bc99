"""`hookline event-types push DIR` as a service repository's deploy step runs it: idempotent,
one line per type, and one plain line naming the field when a change is incompatible."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Services, TopicJanitor
from tests.e2e.conftest import HOOKLINE

pytestmark = pytest.mark.e2e


def _record(name: str, *fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": name, "doc": f"{name} happened.", "fields": list(fields)}


ID = {"name": "id", "type": "string"}
AMOUNT = {"name": "amount_cents", "type": "long"}


@pytest.fixture
def env(services: Services, topic_janitor: TopicJanitor) -> Any:
    prefix = f"cli{uuid.uuid4().hex[:8]}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    yield clean | {
        "HOOKLINE_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "HOOKLINE_TOPIC_PREFIX": prefix,
        "HOOKLINE_PARTITIONS": "1",
        "HOOKLINE_REPLICATION_FACTOR": "1",
        "HOOKLINE_MIN_INSYNC_REPLICAS": "1",
    }
    topic_janitor.delete(lambda name: name.startswith(f"{prefix}."))


def _run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOKLINE, *argv], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _write(folder: Path, name: str, schema: dict[str, Any], examples: Any = None) -> None:
    (folder / f"{name}.avsc").write_text(json.dumps(schema))
    if examples is not None:
        (folder / f"{name}.examples.json").write_text(json.dumps(examples))


def test_push_registers_a_folder_once_and_then_changes_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert _run(env, "topics", "ensure").returncode == 0
    _write(
        tmp_path,
        "invoice.paid",
        _record("InvoicePaid", ID, AMOUNT),
        [{"id": "i", "amount_cents": 5}],
    )
    _write(tmp_path, "invoice.sent", _record("InvoiceSent", ID))
    _write(tmp_path, "refund.issued", _record("RefundIssued", ID, AMOUNT))

    first = _run(env, "event-types", "push", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "invoice.paid: created",
        "invoice.sent: created",
        "refund.issued: created",
    ]
    second = _run(env, "event-types", "push", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [
        "invoice.paid: unchanged",
        "invoice.sent: unchanged",
        "refund.issued: unchanged",
    ]

    optional = {"name": "note", "type": ["null", "string"], "default": None}
    _write(tmp_path, "invoice.sent", _record("InvoiceSent", ID, optional))
    evolved = _run(env, "event-types", "push", str(tmp_path))
    assert evolved.returncode == 0, evolved.stderr
    assert "invoice.sent: new version 2" in evolved.stdout.splitlines()

    _write(
        tmp_path,
        "refund.issued",
        _record("RefundIssued", ID, AMOUNT, {"name": "reason", "type": "string"}),
    )
    refused = _run(env, "event-types", "push", str(tmp_path))
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(
        "hookline event-types: refund.issued.avsc: not backward compatible: field reason:"
    ), line

    rendered = tmp_path / "events.md"
    assert _run(env, "docs", "--output", str(rendered)).returncode == 0
    catalog = rendered.read_text()
    assert "## invoice.sent\n\nInvoiceSent happened.\n\nVersion 2." in catalog
    assert '"amount_cents": 5' in catalog  # invoice.paid's example

    listed = _run(env, "event-types", "list").stdout
    assert "invoice.sent  v2" in listed
    assert "refund.issued  v1" in listed
    assert "task.created  v1" in listed
