"""Unit tests of core.matching: patterns, filters, status, tenants, and the index vs the rule."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.filters import FilterValue, legacy_filter, parse_filter
from core.json_value import JsonValue
from core.matching import SubscriptionIndex, matches, pattern_matches, route
from core.records import DomainEvent, Ref, Subscription, SubscriptionStatus
from tests.factories import subscription as sub

NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


def event(
    event_type: str = "task.created",
    *,
    tenant: str = "acme",
    data: Mapping[str, JsonValue] | None = None,
) -> DomainEvent:
    return DomainEvent(
        id="0f8fad5b-d9cb-469f-a165-70867728950e",
        type=event_type,
        tenant=tenant,
        occurred_at=NOW,
        subject=Ref("task", "t-1"),
        actor=None,
        data={"id": "t-1", "project_id": "p-1"} if data is None else data,
    )


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("task.created", "task.created", True),
        ("task.created", "task.assigned", False),
        ("task.*", "task.created", True),
        ("task.*", "task.assigned", True),
        ("task.*", "meeting.ended", False),
        ("task.*", "taskforce.created", False),
        ("task.*", "task", False),
        ("*", "meeting.ended", True),
        ("*", "anything", True),
        ("task", "task.created", False),
        ("task.created.*", "task.created.late", True),
    ],
)
def test_pattern(pattern: str, event_type: str, *, expected: bool) -> None:
    assert pattern_matches(pattern, event_type) is expected


@pytest.mark.parametrize(
    ("wanted", "data", "expected"),
    [
        ({}, {}, True),
        ({"project_id": "p-1"}, {"project_id": "p-1", "id": "x"}, True),
        ({"project_id": "p-1"}, {"project_id": "p-2"}, False),
        ({"project_id": "p-1", "id": "x"}, {"project_id": "p-1", "id": "y"}, False),
        ({"assignee_id": None}, {"assignee_id": None}, True),
        ({"assignee_id": None}, {}, False),  # a missing field matches nothing, not even null
        ({"done": True}, {"done": 1}, False),  # JSON: true is not 1
        ({"n": 1}, {"n": True}, False),
        ({"n": 1}, {"n": 1.0}, True),
        ({"n": 1}, {"n": "1"}, False),
        ({"tags": "a"}, {"tags": ["a"]}, False),
    ],
)
def test_filter(
    wanted: Mapping[str, FilterValue], data: Mapping[str, JsonValue], *, expected: bool
) -> None:
    """An equality filter matches the same read from an old record's map or written today."""
    assert legacy_filter(wanted).matches(event(data=data)) is expected
    assert parse_filter(wanted).matches(event(data=data)) is expected


def test_status_tenant_and_filter_all_count() -> None:
    e = event(data={"id": "t-1", "project_id": "p-1"})
    assert matches(sub("a", "task.created"), e)
    assert not matches(sub("b", "task.created", status="paused"), e)
    assert not matches(sub("c", "task.created", status="disabled"), e)
    assert not matches(sub("d", "task.created", tenant="other"), e)
    assert not matches(sub("e", "task.created", filter={"project_id": "p-2"}), e)
    assert matches(sub("f", "meeting.ended", "task.*", filter={"project_id": "p-1"}), e)


def test_route_returns_each_subscription_once_ordered_by_id() -> None:
    subs = [
        sub("z", "task.*", "task.created", "*"),
        sub("b", "meeting.ended"),
        sub("a", "*"),
        sub("m", "task.created", tenant="globex"),
        sub("p", "task.created", status="paused"),
    ]
    assert [s.id for s in route(subs, event())] == ["a", "z"]
    assert [s.id for s in route(subs, event("meeting.ended"))] == ["a", "b", "z"]
    assert [s.id for s in route(subs, event(tenant="globex"))] == ["m"]
    assert route(subs, event(tenant="nobody")) == []


def test_index_counts_only_active_subscriptions() -> None:
    index = SubscriptionIndex([sub("a", "*"), sub("b", "*", status="paused")])
    assert index.size == 1


# -- property: the index agrees with the rule on every input ------------------------------

_NAMES = st.sampled_from(["task", "meeting", "webhook", "task.created", "x"])
_TYPES = st.sampled_from(
    ["task.created", "task.assigned", "meeting.ended", "webhook.ping", "task", "task.x.y"]
)
_PATTERNS = st.one_of(
    _TYPES,
    st.sampled_from(["*", "task.*", "meeting.*", "task.x.*", "nothing.*", "task"]),
    _NAMES.map(lambda n: f"{n}.*"),
)
_VALUES: st.SearchStrategy[FilterValue] = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([0.0, 1.0, 1.5]), st.text("ab")
)
_FIELDS = st.sampled_from(["id", "project_id", "done", "n"])
_TENANTS = st.sampled_from(["acme", "globex"])
_STATUSES: st.SearchStrategy[SubscriptionStatus] = st.sampled_from(["active", "paused", "disabled"])


@st.composite
def _subscriptions(draw: st.DrawFn) -> list[Subscription]:
    count = draw(st.integers(0, 12))
    return [
        sub(
            f"s{n:02d}",
            *draw(st.lists(_PATTERNS, min_size=1, max_size=3)),
            tenant=draw(_TENANTS),
            status=draw(_STATUSES),
            filter=draw(st.dictionaries(_FIELDS, _VALUES, max_size=2)),
        )
        for n in range(count)
    ]


@st.composite
def _events(draw: st.DrawFn) -> DomainEvent:
    data: dict[str, JsonValue] = dict(draw(st.dictionaries(_FIELDS, _VALUES, max_size=4)))
    return event(draw(_TYPES), tenant=draw(_TENANTS), data=data)


@settings(max_examples=100, deadline=None)
@given(subscriptions=_subscriptions(), events=st.lists(_events(), min_size=1, max_size=5))
def test_index_agrees_with_the_rule(
    subscriptions: list[Subscription], events: list[DomainEvent]
) -> None:
    index = SubscriptionIndex(subscriptions)
    for e in events:
        expected = sorted(s.id for s in subscriptions if matches(s, e))
        assert [s.id for s in index.route(e)] == expected
