"""Errors of the API package: the HTTP problems, and the failures that stop its workers.

HooklineError (core.errors)
 ├── ApiError                   an RFC 9457 problem the middleware renders (status 500)
 │    ├── BadRequest            400 the body is not JSON, or not an object
 │    ├── Unauthorized          401 no token, or one that is unknown, expired or revoked
 │    ├── Forbidden             403 a tenant token on an admin-only route
 │    │    └── InsufficientScope 403 the token lacks the scope the route needs
 │    ├── NotFound              404 an unknown id, or a record of another tenant
 │    ├── RequestTimeout        408 the body did not arrive within its deadline
 │    ├── Conflict              409 the record is not in a state the request applies to
 │    │    ├── JobEnded         409 a cancel of a job that has already ended
 │    │    ├── EventIdTaken     409 an event id published lately with other content
 │    │    ├── SubscriptionNotActive 409 a send (test, replay, recover) to a paused or
 │    │    │                    disabled subscription; names the state and how to undo it
 │    │    └── Incompatible     409 a new event-type version cannot read earlier data; `errors`
 │    ├── QuotaExceeded         409 the write would take its tenant past a quota
 │    │    └── RateLimited      429 the tenant publishes faster than its rate: retry later
 │    ├── IngestOverloaded      429 delivery lags too far behind to take this publish now
 │    ├── PayloadTooLarge       413 a body over the limit
 │    ├── InvalidInput          422 fields break their rules; `errors` names each field
 │    └── Unavailable           503 Kafka or PostgreSQL did not answer in time
 └── ProjectionError            the projector or replayer cannot continue: stop loudly

ProjectionError is no ApiError: it is never an answer to a request, and the middleware must
not render a worker's stop-the-process failure as a problem document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final

from core.admission import Refusal
from core.errors import HooklineError
from core.json_value import JsonValue
from core.quotas import QuotaBreach
from core.records import Subscription
from core.subscription_status import not_active_detail
from schemas.event_data import format_rfc3339

PROBLEM_TYPE_BASE = "https://hookline.dev/problems/"
REALM: Final = "hookline"
_UNQUOTABLE: Final = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One invalid field: its path (`url`, `event_types[1]`, `data.title`) and why."""

    field: str
    message: str


class ApiError(HooklineError):
    """Root of the API errors; `status`, `slug` and `title` make the problem document."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def headers(self) -> Mapping[str, str]:
        """Headers the answer carries besides the problem document."""
        return {}

    def extensions(self) -> Mapping[str, JsonValue]:
        """Members of the problem document besides type, title, status and detail."""
        return {}


def bearer_challenge(**params: str) -> str:
    """A `WWW-Authenticate` value for the Bearer scheme (RFC 6750 section 3)."""
    quoted = ", ".join(f'{k}="{_UNQUOTABLE.sub("?", v)}"' for k, v in params.items())
    return f'Bearer realm="{REALM}"' + (f", {quoted}" if quoted else "")


class BadRequest(ApiError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class Unauthorized(ApiError):
    """Every 401 challenges for a bearer token; one that was sent but refused is named
    `invalid_token` (RFC 6750), one that was not sent gets no error code."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str, *, token_refused: bool = False) -> None:
        super().__init__(detail)
        self.token_refused = token_refused

    def headers(self) -> Mapping[str, str]:
        if not self.token_refused:
            return {"WWW-Authenticate": bearer_challenge()}
        challenge = bearer_challenge(error="invalid_token", error_description=self.detail)
        return {"WWW-Authenticate": challenge}


class Forbidden(ApiError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class InsufficientScope(Forbidden):
    """The token is good but lacks `scope`; the problem names it in `scope`."""

    slug = "insufficient-scope"
    title = "Insufficient scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"this token lacks the {scope!r} scope")
        self.scope = scope

    def headers(self) -> Mapping[str, str]:
        challenge = bearer_challenge(
            error="insufficient_scope", error_description=self.detail, scope=self.scope
        )
        return {"WWW-Authenticate": challenge}

    def extensions(self) -> Mapping[str, JsonValue]:
        return {"scope": self.scope}


class NotFound(ApiError):
    status = 404
    slug = "not-found"
    title = "Not found"

    def __init__(self, kind: str, record_id: str) -> None:
        super().__init__(f"no {kind} with id {record_id!r}")
        self.kind = kind
        self.record_id = record_id


class RequestTimeout(ApiError):
    status = 408
    slug = "request-timeout"
    title = "Request timeout"


class Conflict(ApiError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class JobEnded(Conflict):
    """A cancel of a job that is no longer running; `job_status` is how it ended."""

    def __init__(self, job_id: str, job_status: str) -> None:
        super().__init__(f"job {job_id!r} has already ended: it is {job_status}")
        self.job_id = job_id
        self.job_status = job_status


class EventIdTaken(Conflict):
    """A publish reusing an event id its tenant published within the dedupe window with
    other content: one id (the webhooks' `webhook-id`) names one event."""

    slug = "event-id-taken"
    title = "Event id taken"

    def __init__(self, event_id: str, *, window_s: float) -> None:
        super().__init__(
            f"event id {event_id} was published within the last {window_s:g} s with other"
            " content; the same content again is accepted, a new event needs a new id"
        )
        self.event_id = event_id

    def extensions(self) -> Mapping[str, JsonValue]:
        return {"event_id": self.event_id}


class SubscriptionNotActive(Conflict):
    """A request that sends to a subscription that is paused or disabled: the problem names
    the state (`subscription_status`, and `disabled_reason` / `disabled_at` / `paused_at`)."""

    slug = "subscription-not-active"
    title = "Subscription not active"

    def __init__(self, sub: Subscription) -> None:
        super().__init__(not_active_detail(sub))
        self.sub = sub

    def extensions(self) -> Mapping[str, JsonValue]:
        members: dict[str, JsonValue] = {"subscription_status": self.sub.status}
        if self.sub.status == "disabled":
            members["disabled_reason"] = self.sub.disabled_reason
            members["disabled_at"] = _time(self.sub.disabled_at)
        if self.sub.status == "paused":
            members["paused_at"] = _time(self.sub.paused_at)
        return members


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_rfc3339(moment)


class Incompatible(Conflict):
    """A new version of an event type cannot read data written with an earlier one; the
    problem's `errors` name each field (`path`, dotted; "" is the record) and why."""

    slug = "incompatible-schema"
    title = "Incompatible schema"

    def __init__(self, event_type: str, problems: Sequence[FieldProblem]) -> None:
        where = ", ".join(p.field or "(record)" for p in problems)
        super().__init__(f"the new version of {event_type} cannot read earlier data: {where}")
        self.problems = tuple(problems)

    def extensions(self) -> Mapping[str, JsonValue]:
        return {"errors": [{"field": p.field, "message": p.message} for p in self.problems]}


class QuotaExceeded(ApiError):
    """A quota refused the request; the problem names it (`quota`, `limit`, `current`)."""

    status = 409
    slug = "quota-exceeded"
    title = "Quota exceeded"

    def __init__(self, breach: QuotaBreach) -> None:
        super().__init__(breach.detail)
        self.breach = breach

    def extensions(self) -> Mapping[str, JsonValue]:
        members: dict[str, JsonValue] = {"quota": self.breach.quota, "limit": self.breach.limit}
        if self.breach.current is not None:
            members["current"] = self.breach.current
        return members


class RateLimited(QuotaExceeded):
    """Over the publish rate: `Retry-After` says when a token is back."""

    status = 429
    title = "Too many requests"

    def __init__(self, breach: QuotaBreach, retry_after_s: int) -> None:
        super().__init__(breach)
        self.retry_after_s = retry_after_s

    def headers(self) -> Mapping[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class IngestOverloaded(ApiError):
    """Delivery lags too far behind the publishes (`core.admission`): `Retry-After` says
    when the lag should be back under the threshold that refused, the problem names the
    rule (`reason`: `fair_share` or `overloaded`), the `lag` and its `limit`. Not a quota:
    it says how the whole platform keeps up, not what one tenant may do."""

    status = 429
    slug = "ingest-overloaded"
    title = "Ingest overloaded"

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal

    def headers(self) -> Mapping[str, str]:
        return {"Retry-After": str(self.refusal.retry_after_s)}

    def extensions(self) -> Mapping[str, JsonValue]:
        return {
            "reason": self.refusal.reason,
            "lag": self.refusal.lag,
            "limit": self.refusal.limit,
        }


class PayloadTooLarge(ApiError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class InvalidInput(ApiError):
    status = 422
    slug = "invalid-input"
    title = "Invalid input"

    def __init__(self, errors: Sequence[FieldProblem]) -> None:
        names = ", ".join(e.field for e in errors)
        super().__init__(f"invalid field(s): {names}")
        self.errors = tuple(errors)

    @classmethod
    def one(cls, field: str, message: str) -> InvalidInput:
        return cls([FieldProblem(field, message)])


class Unavailable(ApiError):
    status = 503
    slug = "unavailable"
    title = "Service unavailable"


class ProjectionError(HooklineError):
    """The projector or the replayer cannot continue (a stop-the-process failure)."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason
