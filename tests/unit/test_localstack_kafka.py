"""The local Kafka's cluster id never looks like a command-line option."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from hookline.app.localstack import kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 makes the first base64url character "-" (index 62): such an id is drawn again
    drawn: Iterator[uuid.UUID] = iter(
        [uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x00" + bytes(15))]
    )
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))
    assert kafka.new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_cluster_ids_are_22_characters_of_base64url() -> None:
    for _ in range(500):
        cluster_id = kafka.new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
