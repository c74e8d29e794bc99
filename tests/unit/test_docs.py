"""docs/events.md is generated from schemas/ (this fails when someone forgot to regenerate it),
and the README and docs/ point only at files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas.catalog import load_catalog
from schemas.docs import HEADER, render_events_markdown

REPO = Path(__file__).resolve().parents[2]
EVENTS_MD = REPO / "docs" / "events.md"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


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


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_a_doc_points_only_at_files_that_exist(doc: Path) -> None:
    """Regression: the docs sent readers to a DESIGN.md the repository does not hold. Every
    relative link, and every `*.md` named in the text, resolves from the doc or the root."""
    text = doc.read_text()
    missing = [
        target
        for target in re.findall(r"\]\(([^)\s]+)\)", text)
        if not target.startswith(("http://", "https://", "#", "mailto:"))
        and not (doc.parent / target.split("#")[0]).exists()
    ]
    missing += [
        name
        for name in re.findall(r"(?<![\w/.-])([\w./-]+\.md)\b", text)
        if not ((doc.parent / name).exists() or (REPO / name).exists())
    ]
    assert not missing, f"{doc.name} points at files that do not exist: {missing}"
