"""Jobs by id, read from the compacted `hookline.control` topic (the API's view of them).

A `CompactedTable` like the subscriptions table: read to the end offsets taken at start
before ready, then follow live. Progress survives restarts because it lives on the topic,
not in memory.
Two writers share a job's key: the replayer (progress, its end) and the API (a cancel), so
every reader applies `latest_state`, under which an ended job stays ended.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from core.records import Job, JobKind, JobStatus, utc_ms
from hookline.runtime.settings import Settings
from hookline.runtime.table import CompactedTable
from schemas.records_avro import RecordCodec


def new_job(
    kind: JobKind,
    *,
    tenant: str,
    subscription_id: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    event_types: tuple[str, ...] = (),
) -> Job:
    """A job just asked for: running, nothing scanned yet."""
    now = utc_ms(datetime.now(UTC))
    return Job(
        id=str(uuid.uuid4()),
        kind=kind,
        tenant=tenant,
        subscription_id=subscription_id,
        since=None if since is None else utc_ms(since),
        until=None if until is None else utc_ms(until),
        event_types=event_types,
        created_at=now,
        updated_at=now,
    )


ENDED: Final[frozenset[JobStatus]] = frozenset({"done", "failed", "cancelled"})


def latest_state(previous: Job | None, record: Job) -> Job:
    """The job once `record` of it is read. An ended job stays ended: a `running` record
    after its end is progress the replayer wrote before it saw the API's cancel."""
    if previous is not None and previous.status in ENDED and record.status == "running":
        return previous
    return record


@dataclass(frozen=True, slots=True)
class JobQuery:
    """What `GET /v1/jobs` asks for; `tenant` None is the admin, who sees every tenant."""

    tenant: str | None
    status: str | None = None
    kind: str | None = None


JobKey = tuple[str, str]
"""A job's place in the list: its creation time (ISO text) and id, newest first."""


def job_key(job: Job) -> JobKey:
    return (job.created_at.isoformat(), job.id)


def page_of_jobs(
    jobs: Iterable[Job], query: JobQuery, *, limit: int, after: JobKey | None
) -> tuple[list[Job], JobKey | None]:
    """The page after `after`, newest first, and the key to continue from (None: the last)."""
    rows = sorted(
        (
            job
            for job in jobs
            if (query.tenant is None or job.tenant == query.tenant)
            and (query.status is None or job.status == query.status)
            and (query.kind is None or job.kind == query.kind)
            and (after is None or job_key(job) < after)
        ),
        key=job_key,
        reverse=True,
    )
    page = rows[:limit]
    return page, (job_key(page[-1]) if len(rows) > limit else None)


class JobTable(CompactedTable[Job]):
    def __init__(self, settings: Settings, codec: RecordCodec, *, client_id: str) -> None:
        super().__init__(
            settings,
            settings.topic("control"),
            client_id=client_id,
            decode=codec.decode_job,
            latest=latest_state,
        )

    def wait_for(self, job_id: str, *, updated_at: datetime, timeout_s: float) -> bool:
        """Wait until the table holds the job as of `updated_at` or later."""

        def holds(rows: Mapping[str, Job]) -> bool:
            row = rows.get(job_id)
            return row is not None and row.updated_at >= updated_at

        return self.wait_until(holds, timeout_s=timeout_s)
