"""Unit tests of judging a repeated event id (`core.event_dedupe`)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from core.event_dedupe import PublishedContent, SeenEvent, content_digest, judge_republish
from core.records import Ref

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CONTENT = PublishedContent(
    type="task.created",
    tenant="acme",
    occurred_at=None,
    subject=Ref("task", "t-1"),
    actor=None,
    data={"id": "t-1", "title": "A", "labels": {"b": 1, "a": 2}},
    changes=None,
)


def test_key_order_does_not_change_the_digest() -> None:
    reordered = dataclasses.replace(
        CONTENT, data={"labels": {"a": 2, "b": 1}, "title": "A", "id": "t-1"}
    )
    assert content_digest(reordered) == content_digest(CONTENT)


def test_every_part_of_the_content_changes_the_digest() -> None:
    variants = [
        dataclasses.replace(CONTENT, type="task.assigned"),
        dataclasses.replace(CONTENT, tenant="other"),
        dataclasses.replace(CONTENT, occurred_at=T0),
        dataclasses.replace(CONTENT, subject=Ref("task", "t-2")),
        dataclasses.replace(CONTENT, actor=Ref("user", "u-1")),
        dataclasses.replace(CONTENT, data={"id": "t-1", "title": "B"}),
        dataclasses.replace(CONTENT, changes={"title": "A"}),
    ]
    digests = {content_digest(v) for v in variants}
    assert len(digests) == len(variants)
    assert content_digest(CONTENT) not in digests


def test_the_same_content_is_a_retry_and_other_content_a_conflict() -> None:
    digest = content_digest(CONTENT)
    assert judge_republish(SeenEvent(digest, T0, sent=True), digest) == "already-sent"
    assert judge_republish(SeenEvent(digest, T0, sent=False), digest) == "send-again"
    other = content_digest(dataclasses.replace(CONTENT, data={"id": "t-1"}))
    assert judge_republish(SeenEvent(digest, T0, sent=True), other) == "conflict"
    assert judge_republish(SeenEvent(digest, T0, sent=False), other) == "conflict"
