"""Label values of bounded cardinality: a metric labelled by tenant must not grow one time
series per tenant forever (every series costs memory here and in Prometheus)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

OTHER: Final = "other"


@dataclass(slots=True)
class BoundedLabels:
    """The first `limit` distinct values keep their own label; every later one is `other`.

    First come rather than top-N: a top-N needs a count of every value ever seen (unbounded
    itself), and a series that changes label as ranks move breaks `rate()`. A value keeps
    its label for the life of the process, so its counter only ever goes up.
    """

    limit: int
    _kept: set[str] = field(default_factory=set)

    def label(self, value: str) -> str:
        if value in self._kept:
            return value
        if len(self._kept) < self.limit and value != OTHER:
            self._kept.add(value)
            return value
        return OTHER
