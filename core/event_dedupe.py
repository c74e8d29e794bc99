"""Publishing an event id again: the same event is accepted once, another body is refused.

An event's id is its webhooks' `webhook-id`, so two different bodies under one id would
reach a receiver as one message that changed. Within the dedupe window a publish is judged
against what its id was first published with: the same content is a retry of it (accepted,
and sent again only if the first publish may not have reached Kafka), anything else a
conflict. The content is what the caller sent, so a retry that leaves `occurred_at` out
again matches the first; the first's `occurred_at` is kept and reused, so a re-send is the
very same body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

import orjson

from core.json_value import JsonValue
from core.records import Ref


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedContent:
    """What a publish asked for, before defaults: `occurred_at` None when it was left out."""

    type: str
    tenant: str
    occurred_at: datetime | None
    subject: Ref
    actor: Ref | None
    data: Mapping[str, JsonValue]
    changes: Mapping[str, JsonValue] | None


def content_digest(content: PublishedContent) -> bytes:
    """SHA-256 of the content in canonical JSON (sorted keys), so key order never matters."""
    canonical = {
        "type": content.type,
        "tenant": content.tenant,
        "occurred_at": None if content.occurred_at is None else content.occurred_at.isoformat(),
        "subject": [content.subject.type, content.subject.id],
        "actor": None if content.actor is None else [content.actor.type, content.actor.id],
        "data": content.data,
        "changes": content.changes,
    }
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).digest()


@dataclass(frozen=True, slots=True)
class SeenEvent:
    """An id published within the window: its content's digest, the `occurred_at` it was
    sent with, and whether Kafka acknowledged it."""

    digest: bytes
    occurred_at: datetime
    sent: bool


Republish: TypeAlias = Literal["already-sent", "send-again", "conflict"]


def judge_republish(seen: SeenEvent, digest: bytes) -> Republish:
    """`conflict` for other content; else `already-sent` once Kafka has it, `send-again`
    while the first publish may have failed before Kafka acknowledged it."""
    if seen.digest != digest:
        return "conflict"
    return "already-sent" if seen.sent else "send-again"
