"""Opaque pagination cursors: URL-safe base64 of the last row's sort key.

A cursor is only ever produced by the API from a row it returned, so decoding checks the
shape strictly (strings a store can hold, `core.text_bounds`) and anything else is an
`InvalidField` naming `cursor`.
"""

from __future__ import annotations

import base64
import binascii

import orjson

from core.errors import InvalidField
from core.text_bounds import text_problem

FIELD = "cursor"


def encode_cursor(key: tuple[str, ...]) -> str:
    """The cursor after a row whose sort key is `key` (strings, in sort order)."""
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode("ascii").rstrip("=")


def decode_cursor(text: str, *, arity: int) -> tuple[str, ...]:
    """The sort key inside a cursor; `InvalidField('cursor', ...)` when it is not one of ours."""
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        key = orjson.loads(raw)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise InvalidField(FIELD, "not a cursor returned by this API") from None
    if (
        not isinstance(key, list)
        or len(key) != arity
        or not all(isinstance(part, str) and text_problem(part) is None for part in key)
    ):
        raise InvalidField(FIELD, "not a cursor returned by this API")
    return tuple(key)
