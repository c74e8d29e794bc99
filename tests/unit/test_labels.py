"""Per-tenant metric labels stay bounded: a flood of tenants cannot grow one series each."""

from __future__ import annotations

from hookline.runtime.labels import OTHER, BoundedLabels


def test_the_first_tenants_keep_their_label_and_later_ones_are_other() -> None:
    labels = BoundedLabels(limit=2)
    assert [labels.label(t) for t in ("a", "b", "c", "a", "d", "b")] == [
        "a",
        "b",
        OTHER,
        "a",
        OTHER,
        "b",
    ]


def test_ten_thousand_tenants_make_at_most_limit_plus_one_values() -> None:
    labels = BoundedLabels(limit=100)
    assert len({labels.label(f"tenant-{i}") for i in range(10_000)}) == 101


def test_a_tenant_named_other_does_not_take_a_place() -> None:
    labels = BoundedLabels(limit=1)
    assert (labels.label(OTHER), labels.label("a")) == (OTHER, "a")
