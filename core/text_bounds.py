"""The characters hookline can store: PostgreSQL `text` cannot hold NUL, and UTF-8 (the wire
encoding of psycopg, Kafka keys and Avro strings) has no form for a lone surrogate. Input is
held to this where it is parsed, so neither store ever meets such a string.
"""

from __future__ import annotations

import re
from typing import Final

_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, naming the first offending character; None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return f"character {found.start()} (U+{ord(found.group()):04X}) cannot be stored"
