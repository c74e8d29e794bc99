"""TEMPORARY stub of the backward-compatibility checker (the real one lands separately):
only "added field without default" and "field type changed", on top-level record fields."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Incompatibility:
    path: str  # dotted field path, "" for root
    reason: str  # one plain sentence


def incompatibilities(reader: Any, writer: Any) -> list[Incompatibility]:
    """Why data written with `writer` cannot be read with `reader`."""
    found: list[Incompatibility] = []
    written = {f["name"]: f for f in writer.get("fields", [])}
    for field in reader.get("fields", []):
        name = field["name"]
        if name not in written:
            if "default" not in field:
                found.append(Incompatibility(name, "the field was added without a default."))
            continue
        if json.dumps(field["type"], sort_keys=True) != json.dumps(
            written[name]["type"], sort_keys=True
        ):
            found.append(Incompatibility(name, "the field's type changed."))
    return found


def backward_incompatibilities(new: Any, earlier: Sequence[Any]) -> list[Incompatibility]:
    """Why `new` cannot read data written with any of `earlier`, without repeats."""
    found: list[Incompatibility] = []
    for old in earlier:
        for problem in incompatibilities(new, old):
            if problem not in found:
                found.append(problem)
    return found
