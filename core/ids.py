"""Deterministic ids: one delivery id per (event, subscription), stable across replays."""

from __future__ import annotations

import uuid
from typing import Final

# Fixed forever: changing it would give every past delivery a new id.
DELIVERY_NAMESPACE: Final = uuid.UUID("e618c6a6-638b-45fa-9b8c-424966ad9841")


def delivery_id(event_id: str, subscription_id: str) -> str:
    """UUIDv5 of the pair; the length prefix keeps ("a.b", "c") and ("a", "b.c") apart."""
    name = f"{len(event_id)}:{event_id}:{subscription_id}"
    return str(uuid.uuid5(DELIVERY_NAMESPACE, name))
