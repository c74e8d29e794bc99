"""The webhook request: the JSON body, the bytes sent for it, and the headers sent with them.

The body rendered here is the payload every command carries; `encode_body` turns it into the
exact bytes a subscription's content type asks for, which are what is signed and sent, so
nothing re-serialises it later. `logged_headers` is the request's headers as the delivery
history keeps them: nothing in it can sign a webhook or reveal a custom header's value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final, assert_never, get_args
from urllib.parse import urlencode

import orjson

from core.errors import InvalidCustomHeader
from core.json_value import JsonValue
from core.records import ContentType

CONTENT_TYPE: Final[ContentType] = "application/json"
CONTENT_TYPES: Final[tuple[ContentType, ...]] = get_args(ContentType)
FORM_FIELD: Final = "payload"
"""The form field that holds the JSON in an `application/x-www-form-urlencoded` body."""
REDACTED: Final = "<redacted>"
# Headers whose values the delivery history keeps as sent: hookline's own and what the HTTP
# client adds. Any other is a subscription's custom header, often a credential.
_LOGGED_AS_SENT: Final = frozenset(
    {
        "accept",
        "content-length",
        "content-type",
        "host",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "traceparent",
        "tracestate",
    }
)
# The W3C trace context hookline sends: a subscription may not set it, and one stored before
# these names were reserved has its values dropped at send time rather than its deliveries
# failed, so the platform's context always wins.
TRACE_HEADERS: Final = frozenset({"traceparent", "tracestate"})
# Headers a subscription's custom headers may not set: ours, or ones that would break framing.
PROTECTED_HEADERS: Final = (
    frozenset(
        {"content-type", "user-agent", "content-length", "transfer-encoding", "host", "connection"}
    )
    | TRACE_HEADERS
)
PROTECTED_PREFIX: Final = "webhook-"
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_VALUE_CHARS: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and ``Z``, e.g. 2025-01-02T03:04:05.678Z."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _plain_mapping(value: object) -> dict[object, object]:
    # orjson serialises dict natively; other read-only mappings reach it through here.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def render_body(
    *,
    type: str,  # shadows the builtin on purpose: it is the wire format's field name
    occurred_at: datetime,
    tenant: str,
    subject: Mapping[str, object],
    actor: Mapping[str, object] | None,
    data: Mapping[str, object],
    changes: Mapping[str, JsonValue] | None = None,
) -> bytes:
    """The JSON body, keys in wire order: type, timestamp, tenant, subject, actor, data, and
    `changes` when the event has one. Without it the key is left out rather than null, so
    the body of an event without changes is byte for byte what it was before they were
    delivered (a replay of an old event sends what was sent then)."""
    envelope = {
        "type": type,
        "timestamp": format_timestamp(occurred_at),
        "tenant": tenant,
        "subject": dict(subject),
        "actor": None if actor is None else dict(actor),
        "data": dict(data),
    }
    if changes is not None:
        envelope["changes"] = dict(changes)
    return orjson.dumps(envelope, default=_plain_mapping)


def encode_body(payload: bytes, content_type: ContentType) -> bytes:
    """The bytes sent for the JSON `payload`: itself, or the form GitHub sends,
    `payload=<the JSON, form-urlencoded>`. These bytes are signed."""
    match content_type:
        case "application/json":
            return payload
        case "application/x-www-form-urlencoded":
            return urlencode({FORM_FIELD: payload}).encode("ascii")
        case _:
            assert_never(content_type)


def check_custom_headers(custom: Mapping[str, str]) -> None:
    """Raise InvalidCustomHeader for a malformed name or value or one that overrides ours."""
    for name, value in custom.items():
        if not _TOKEN.fullmatch(name):
            raise InvalidCustomHeader(name, "the name is not an HTTP token")
        lowered = name.lower()
        if lowered in PROTECTED_HEADERS or lowered.startswith(PROTECTED_PREFIX):
            raise InvalidCustomHeader(name, "it would override a header hookline sets")
        if _FORBIDDEN_VALUE_CHARS.search(value):
            raise InvalidCustomHeader(name, "the value contains control characters")


def webhook_headers(
    *,
    msg_id: str,
    timestamp_s: int,
    signature: str,
    version: str,
    custom: Mapping[str, str],
    content_type: ContentType = CONTENT_TYPE,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> dict[str, str]:
    """Every header of the request; raises InvalidCustomHeader rather than let custom override.

    `traceparent` (and `tracestate` with it) is the W3C trace context of the attempt, so the
    receiver's work joins the event's trace; a request without a trace carries neither.
    """
    custom = {name: value for name, value in custom.items() if name.lower() not in TRACE_HEADERS}
    check_custom_headers(custom)
    trace_headers = {} if traceparent is None else {"traceparent": traceparent}
    if traceparent is not None and tracestate:
        trace_headers["tracestate"] = tracestate
    return {
        "content-type": content_type,
        "user-agent": f"hookline/{version}",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signature,
        **trace_headers,
        **custom,
    }


def logged_headers(sent: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The request's headers as the history keeps them, names in lower case (a repeated
    name's values joined with `, `, as HTTP allows): each signature
    as `v1,<redacted>` (its version stays, to show which schemes were sent) and every custom
    header's value as `<redacted>`."""
    logged: dict[str, str] = {}
    for name, value in sent:
        lowered = name.lower()
        kept = _logged_value(lowered, value)
        logged[lowered] = f"{logged[lowered]}, {kept}" if lowered in logged else kept
    return logged


def _logged_value(name: str, value: str) -> str:
    if name == "webhook-signature":
        return " ".join(
            f"{entry.partition(',')[0]},{REDACTED}" for entry in value.split(" ") if entry
        )
    return value if name in _LOGGED_AS_SENT else REDACTED
