"""Errors of the API package: the HTTP problems, and the failures that stop its workers.

HooklineError (core.errors)
 ├── ApiError                   an RFC 9457 problem the middleware renders (status 500)
 │    ├── BadRequest            400 the body is not JSON, or not an object
 │    ├── Unauthorized          401 no token, or one that is not known
 │    ├── Forbidden             403 a tenant token on an admin-only route
 │    ├── NotFound              404 an unknown id, or a record of another tenant
 │    ├── RequestTimeout        408 the body did not arrive within its deadline
 │    ├── Conflict              409 the record is not in a state the request applies to
 │    │    └── JobEnded         409 a cancel of a job that has already ended
 │    ├── QuotaExceeded         409 the write would take its tenant past a quota
 │    │    └── RateLimited      429 the tenant publishes faster than its rate: retry later
 │    ├── PayloadTooLarge       413 a body over the limit
 │    ├── InvalidInput          422 fields break their rules; `errors` names each field
 │    └── Unavailable           503 Kafka or PostgreSQL did not answer in time
 └── ProjectionError            the projector or replayer cannot continue: stop loudly

ProjectionError is no ApiError: it is never an answer to a request, and the middleware must
not render a worker's stop-the-process failure as a problem document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from core.errors import HooklineError
from core.quotas import QuotaBreach

PROBLEM_TYPE_BASE = "https://hookline.dev/problems/"


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


class BadRequest(ApiError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class Unauthorized(ApiError):
    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(ApiError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


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


class QuotaExceeded(ApiError):
    """A quota refused the request; the problem names it (`quota`, `limit`, `current`)."""

    status = 409
    slug = "quota-exceeded"
    title = "Quota exceeded"

    def __init__(self, breach: QuotaBreach) -> None:
        super().__init__(breach.detail)
        self.breach = breach


class RateLimited(QuotaExceeded):
    """Over the publish rate: `Retry-After` says when a token is back."""

    status = 429
    title = "Too many requests"

    def __init__(self, breach: QuotaBreach, retry_after_s: int) -> None:
        super().__init__(breach)
        self.retry_after_s = retry_after_s


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
