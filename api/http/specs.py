"""The request bodies, operations and OpenAPI document of one event catalog.

Event-type names are part of what the API accepts (a subscription's `event_types`, an
event's `type`) and of the document (one publish variant per type), so all three are built
again whenever the live catalog changes, and kept while it does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from api.http.bodies import Bodies
from schemas.catalog import EventCatalog

if TYPE_CHECKING:  # the route table imports the handlers, which import this
    from api.http.operation import Operation


@dataclass(frozen=True, slots=True)
class Spec:
    catalog: EventCatalog
    bodies: Bodies
    operations: tuple[Operation, ...]
    document: bytes


class LiveSpecs:
    """The `Spec` of the catalog as of now, built once per catalog (the live catalog hands
    out the same object until its table changes)."""

    def __init__(self, build: Callable[[EventCatalog], Spec]) -> None:
        self._build = build
        self._spec: Spec | None = None

    def of(self, catalog: EventCatalog) -> Spec:
        spec = self._spec
        if spec is None or spec.catalog is not catalog:
            spec = self._spec = self._build(catalog)
        return spec
