"""The type of a value JSON carries, shared by the records and the filters that read them."""

from __future__ import annotations

from typing import TypeAlias

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
"""A value that JSON can carry, as `json.loads` / `orjson.loads` return it."""
