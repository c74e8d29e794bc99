"""Unit tests of which signing secrets a rotation keeps (`core.secret_rotation`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.records import StoredSecret
from core.secret_rotation import MAX_OVERLAP, rotated

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_the_replaced_secret_signs_for_the_overlap_and_the_new_one_is_first() -> None:
    current = StoredSecret(b"a", None)
    new = StoredSecret(b"b", None)
    assert rotated((current,), new, now=NOW, overlap=timedelta(hours=2)) == (
        new,
        StoredSecret(b"a", NOW + timedelta(hours=2)),
    )


def test_a_second_rotation_keeps_the_first_ones_secret_until_its_own_expiry() -> None:
    """Regression: the second rotation dropped the secret the first one kept for a day."""
    first = StoredSecret(b"a", NOW + timedelta(hours=20))
    current = StoredSecret(b"b", None)
    new = StoredSecret(b"c", None)
    assert rotated((current, first), new, now=NOW, overlap=timedelta(hours=1)) == (
        new,
        StoredSecret(b"b", NOW + timedelta(hours=1)),
        first,
    )


def test_no_overlap_and_expired_secrets_are_dropped() -> None:
    expired = StoredSecret(b"a", NOW)
    current = StoredSecret(b"b", None)
    new = StoredSecret(b"c", None)
    assert rotated((current, expired), new, now=NOW, overlap=timedelta(0)) == (new,)


@pytest.mark.parametrize("overlap", [timedelta(seconds=-1), MAX_OVERLAP + timedelta(seconds=1)])
def test_an_overlap_out_of_bounds_is_refused(overlap: timedelta) -> None:
    with pytest.raises(ValueError, match="outside"):
        rotated((), StoredSecret(b"a", None), now=NOW, overlap=overlap)


def test_the_new_secret_must_be_current() -> None:
    with pytest.raises(ValueError, match="current"):
        rotated((), StoredSecret(b"a", NOW), now=NOW, overlap=timedelta(0))
