"""docs/events.md is generated from schemas/; this fails when someone forgot to regenerate it."""

from __future__ import annotations

from pathlib import Path

from schemas.catalog import load_catalog
from schemas.docs import HEADER, render_events_markdown

EVENTS_MD = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_events_doc_is_current() -> None:
    expected = render_events_markdown(load_catalog())
    assert EVENTS_MD.read_text() == expected, "docs/events.md is stale: run `hookline docs`"


def test_events_doc_lists_every_type_and_field() -> None:
    text = render_events_markdown(load_catalog())
    assert text.startswith(HEADER)
    for name in ("task.created", "task.assigned", "meeting.ended", "webhook.ping"):
        assert f"## {name}" in text
    assert "| `attendee_ids` | array of string | yes |" in text
    assert "| `ended_at` | string (RFC 3339) | yes |" in text
