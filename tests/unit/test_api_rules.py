"""Unit tests of the API's pure rules: cursors, tokens, the history status merge, and the
subscription field rules."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.cursors import decode_cursor, encode_cursor
from core.delivery_status import STATUSES, DeliveryStatus, merge, status_of_outcome
from core.errors import InvalidField
from core.filters import parse_filter
from core.records import DomainEvent, Ref, Subscription
from core.replay import of_types, selects
from core.subscription_rules import (
    check_event_types,
    check_headers,
    check_rate_limit,
    check_url,
)
from core.text_bounds import text_problem
from core.tokens import check_tenant, generate_token, hash_token, same_token
from tests.factories import subscription

CATALOG = ("task.created", "task.assigned", "meeting.ended", "webhook.ping")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


storable = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))  # no surrogates


@given(st.tuples(storable, storable))
def test_cursor_round_trips(key: tuple[str, str]) -> None:
    assert decode_cursor(encode_cursor(key), arity=2) == key


@pytest.mark.parametrize("part", ["\x00", "a\x00b", "\ud800", "x\udfff"])
def test_a_cursor_around_a_string_no_store_can_hold_is_refused(part: str) -> None:
    """Regression: a cursor holding a NUL reached PostgreSQL as a key and answered 500."""
    raw = base64.urlsafe_b64encode(json.dumps(["2025-01-01T00:00:00+00:00", part]).encode())
    with pytest.raises(InvalidField) as caught:
        decode_cursor(raw.decode(), arity=2)
    assert caught.value.field == "cursor"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("plain, with \t and \u00e9 and \U0001f600", None),
        ("a\x00b", "character 1 (U+0000) cannot be stored"),
        ("\ud800", "character 0 (U+D800) cannot be stored"),
        ("ok\udfff", "character 2 (U+DFFF) cannot be stored"),
    ],
)
def test_text_no_store_can_hold_is_named_by_its_first_bad_character(
    text: str, problem: str | None
) -> None:
    assert text_problem(text) == problem


@pytest.mark.parametrize("text", ["", "!!!", "bm9wZQ", "WyJ4Il0", "WzEsMl0"])
def test_foreign_cursors_are_refused(text: str) -> None:
    with pytest.raises(InvalidField) as caught:
        decode_cursor(text, arity=2)
    assert caught.value.field == "cursor"


def test_tokens_are_random_and_stored_hashed() -> None:
    first, second = generate_token(), generate_token()
    assert first != second
    assert first.startswith("hl_")
    assert len(first) > 40
    assert hash_token(first) == hash_token(first) != hash_token(second)
    assert first not in hash_token(first)
    assert same_token(first, first)
    assert not same_token(first, second)


@pytest.mark.parametrize("tenant", ["acme", "a", "acme-eu_1.prod", "9lives"])
def test_good_tenants(tenant: str) -> None:
    assert check_tenant(tenant) == tenant


@pytest.mark.parametrize("tenant", ["", "-x", "with space", "a" * 65, "ümlaut"])
def test_bad_tenants(tenant: str) -> None:
    with pytest.raises(InvalidField):
        check_tenant(tenant)


proposals = st.tuples(
    st.sampled_from(STATUSES),
    st.integers(min_value=0, max_value=20).map(lambda s: T0 + timedelta(seconds=s)),
)


@given(st.lists(proposals, min_size=1, max_size=8), st.randoms())
def test_merge_ignores_order_and_repeats(
    props: list[tuple[DeliveryStatus, datetime]], rand: object
) -> None:
    def fold(items: list[tuple[DeliveryStatus, datetime]]) -> tuple[DeliveryStatus, datetime]:
        state = items[0]
        for item in items[1:]:
            state = merge(state, item)
        return state

    shuffled = list(props) * 2
    rand.shuffle(shuffled)  # type: ignore[attr-defined]
    assert fold(shuffled)[0] == fold(props)[0]


def test_delivered_wins_and_later_wins_otherwise() -> None:
    assert merge(("delivered", T0), ("dead", T0 + timedelta(hours=1)))[0] == "delivered"
    assert merge(("dead", T0), ("pending", T0 + timedelta(seconds=1)))[0] == "pending"
    assert merge(("retrying", T0), ("dead", T0))[0] == "dead"
    assert merge(("dead", T0), ("retrying", T0 - timedelta(seconds=1)))[0] == "dead"
    assert status_of_outcome("failed") == "failed"


LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.mark.parametrize(
    "url",
    ["https://example.com/h", "http://example.com:8080/x?y=1", "http://127.0.0.1:9/h"],
)
def test_good_urls(url: str) -> None:
    assert check_url(url, allowed=LOCAL) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com",
        "https://",
        "http://user:pw@example.com/",
        "http://10.1.2.3/",
        "http://2852039166/",  # 169.254.169.254 as one number
        "http://[::ffff:169.254.169.254]/",
        "http://example.com:99999/",
        "https://example.com/" + "a" * 2048,
        "https://exa mple.com/",
        # regression: fullwidth digits and ideographic full stops spell 169.254.169.254
        "https://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/",
        "https://169\u3002254\u3002169\u3002254/",
        "https://a\u00e9..b/",  # no IDNA encoding: the deliverer could never send to it
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidField) as caught:
        check_url(url, allowed=LOCAL)
    assert caught.value.field == "url"


def test_event_type_patterns() -> None:
    assert check_event_types(["*", "task.*", "task.created", "task.*"], catalog=CATALOG) == (
        "*",
        "task.*",
        "task.created",
    )
    for bad, field in [
        (["ghost.*"], "event_types[0]"),
        (["task.x"], "event_types[0]"),
        ([], "event_types"),
    ]:
        with pytest.raises(InvalidField) as caught:
            check_event_types(bad, catalog=CATALOG)
        assert caught.value.field == field


def test_headers_and_rate_limit() -> None:
    with pytest.raises(InvalidField) as caught:
        check_headers({"Webhook-Signature": "x"})
    assert caught.value.field == "headers.Webhook-Signature"
    assert check_rate_limit(None) is None
    with pytest.raises(InvalidField):
        check_rate_limit(0)


BASE = subscription("s", "task.*", at=T0, status="paused")


def _sub(**changes: Any) -> Subscription:
    if "filter" in changes:
        changes["filter"] = parse_filter(changes["filter"])
    return dataclasses.replace(BASE, **changes)


def _event(event_type: str = "task.created", tenant: str = "acme") -> DomainEvent:
    return DomainEvent(
        id="e",
        type=event_type,
        tenant=tenant,
        occurred_at=T0,
        subject=Ref("task", "1"),
        actor=None,
        data={"project_id": "p-1", "n": 1},
    )


def test_replay_selection() -> None:
    assert selects(_event(), _sub(), ())
    assert not selects(_event(tenant="other"), _sub(), ())
    assert not selects(_event("meeting.ended"), _sub(), ())
    assert not selects(_event(), _sub(), ("task.assigned",))
    assert selects(_event(), _sub(filter={"project_id": "p-1"}), ("task.*",))
    assert not selects(_event(), _sub(filter={"n": True}), ())
    assert selects(_event(), _sub(filter={"data.n": {"$gte": 1}, "subject.type": "task"}), ())
    assert not selects(_event(), _sub(filter={"$or": [{"n": {"$lt": 1}}, {"actor.id": "u-1"}]}), ())


def test_a_jobs_type_limit() -> None:
    assert of_types("task.created", ())
    assert of_types("task.created", ("meeting.ended", "task.*"))
    assert of_types("task.created", ("*",))
    assert not of_types("task.created", ("task.assigned", "meeting.*"))
