"""One operation of the admin API: its route, handler, scope and what it accepts and answers.

The route table (`api.http.routes`) lists them; the app registers their handlers and the
OpenAPI document is generated from them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from api.http.fields import JsonSchema, PathParam, QueryParam
from core.records import TokenScope

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Every authenticated operation may answer these (403: a scope it lacks, or a tenant token
# on an admin-only route); bodies add 400, 408, 413, 422.
AUTH_ERRORS: Final = (401, 403, 503)
BODY_ERRORS: Final = (400, 408, 413, 422)
_PLACEHOLDER: Final = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Answer:
    """One documented response: its description and JSON schema (None: no body, or not JSON)."""

    description: str
    schema: JsonSchema | None = None
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Operation:
    """One route. `scope` is what a token needs to call it (None only on public routes):
    `read` for every GET but the signing secret's, `publish` to publish events, `write` for
    every other change and for reading a signing secret (it can sign the tenant's webhooks); the
    app refuses a token without it (403) before the handler runs."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    answers: Mapping[int, Answer]
    body: JsonSchema | None = None
    body_name: str | None = None
    body_required: bool = True
    query: tuple[QueryParam[Any], ...] = ()
    path_params: tuple[PathParam[Any], ...] = ()
    public: bool = False
    scope: TokenScope | None = None
    errors: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        """Every placeholder of the path is declared, so every path value is parsed before
        its handler runs and documented; a route is public or names the scope it needs."""
        declared = sorted(p.placeholder for p in self.path_params)
        if sorted(_PLACEHOLDER.findall(self.path)) != declared:
            raise ValueError(f"{self.method} {self.path}: its placeholders are not {declared}")
        if self.public != (self.scope is None):
            raise ValueError(f"{self.operation_id}: a route is public or needs a scope")
