"""The pure rules around jobs: the times a job may name, the state a reader keeps of a job
two writers share, the jobs list, and how the runner records a job's own error.

Regression: a replay `since` 1969-12-31T23:59:59Z reached `offsets_for_times` as a negative
timestamp, the broker refused it, and the error stopped the whole replayer.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from api.http.bodies import build_bodies
from api.model.errors import InvalidInput
from api.model.history import StoredCommand
from api.model.jobs import JobQuery, job_key, latest_state, new_job, page_of_jobs
from api.replayer.job_runner import JobRunner, RunnerBroken
from api.replayer.ports import Ports
from core.records import Job, JobKind, JobStatus
from core.time_bounds import EARLIEST, LATEST, bounded_utc, time_problem
from hookline.runtime.settings import Settings
from schemas.catalog import load_catalog
from tests.factories import subscription
from tests.fakes import FakeProducer, FakeSubscriptionTable, FakeTransactionalKafka, ManualClock
from tests.unit.test_records_avro import make_codec

BODIES = build_bodies(load_catalog().names(), ())
T0 = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


# -- the times a job may name ----------------------------------------------------------------


def test_the_bounds_are_inclusive_and_refuse_a_millisecond_beyond() -> None:
    assert time_problem(EARLIEST) is None
    assert time_problem(LATEST) is None
    assert time_problem(EARLIEST - timedelta(milliseconds=1)) is not None
    assert time_problem(LATEST + timedelta(milliseconds=1)) is not None


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("1969-12-31T23:59:59Z", "must be from 1970-01-01T00:00:00.000Z"),
        ("1970-01-01T00:59:59+01:00", "must be from 1970-01-01T00:00:00.000Z"),
        ("9999-12-31T00:00:00Z", "to 9999-12-30T23:59:59.999Z"),
        ("0001-01-01T00:00:00+01:00", "out of range once converted to UTC"),
        ("9999-12-31T23:59:59-01:00", "out of range once converted to UTC"),
    ],
)
def test_a_job_time_outside_the_bounds_names_its_field(since: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        BODIES.replay.parse({"since": since, "until": since})
    assert [p.field for p in caught.value.errors] == ["since", "until"]
    assert all(message in p.message for p in caught.value.errors)
    with pytest.raises(InvalidInput) as caught:
        BODIES.recover.parse({"since": since})
    assert [p.field for p in caught.value.errors] == ["since"]


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14))),
        EARLIEST - timedelta(milliseconds=1),
    ],
)
def test_a_time_without_a_utc_form_or_out_of_bounds_is_a_value_error(moment: datetime) -> None:
    with pytest.raises(ValueError, match="must be from 1970"):
        bounded_utc(moment)


def test_the_bounds_themselves_are_accepted() -> None:
    parsed = BODIES.replay.parse(
        {"since": "1970-01-01T00:00:00Z", "until": "9999-12-30T23:59:59.999Z"}
    )
    assert parsed.get(BODIES.job.since) == EARLIEST
    assert parsed.get(BODIES.job.until) == LATEST


def test_an_event_time_overflowing_utc_is_an_invalid_field_not_an_error() -> None:
    with pytest.raises(InvalidInput) as caught:
        BODIES.publish_event.parse(
            {
                "type": "webhook.ping",
                "occurred_at": "0001-01-01T00:00:00+01:00",
                "subject": {"type": "s", "id": "s"},
                "data": {"subscription_id": "s"},
            }
        )
    assert [p.field for p in caught.value.errors] == ["occurred_at"]


def test_the_document_states_the_bounds() -> None:
    properties = BODIES.replay.schema()["properties"]
    assert isinstance(properties, dict)
    since = properties["since"]
    assert isinstance(since, dict)
    assert "1970-01-01T00:00:00.000Z" in str(since["description"])


# -- one job, two writers ---------------------------------------------------------------------


def _job(status: JobStatus = "running", **changes: Any) -> Job:
    job = new_job("replay", tenant="acme", subscription_id="s1", since=T0)
    return dataclasses.replace(job, status=status, **changes)


def test_progress_written_after_a_cancel_does_not_revive_the_job() -> None:
    cancelled = _job("cancelled")
    progress = dataclasses.replace(cancelled, status="running", scanned=500)
    assert latest_state(cancelled, progress) is cancelled


@pytest.mark.parametrize("end", ["done", "failed", "cancelled"])
def test_the_runners_final_record_replaces_the_cancel(end: JobStatus) -> None:
    cancelled = _job("cancelled")
    final = dataclasses.replace(cancelled, status=end, scanned=700)
    assert latest_state(cancelled, final) is final


def test_a_running_job_follows_its_progress() -> None:
    first = _job()
    later = dataclasses.replace(first, scanned=10)
    assert latest_state(None, first) is first
    assert latest_state(first, later) is later


# -- the jobs list ----------------------------------------------------------------------------


def _listed(tenant: str, kind: JobKind, status: JobStatus, minute: int, job_id: str) -> Job:
    return dataclasses.replace(
        new_job(kind, tenant=tenant, subscription_id="s1", since=T0),
        id=job_id,
        status=status,
        created_at=T0 + timedelta(minutes=minute),
    )


JOBS = (
    _listed("acme", "replay", "done", 1, "a1"),
    _listed("acme", "recover", "failed", 2, "a2"),
    _listed("acme", "replay", "running", 3, "a3"),
    _listed("other", "replay", "running", 4, "o1"),
    _listed("acme", "replay", "cancelled", 3, "a4"),  # same time as a3: the id breaks the tie
)


def _ids(jobs: list[Job]) -> list[str]:
    return [j.id for j in jobs]


def test_jobs_are_listed_newest_first_within_the_tenant() -> None:
    page, last = page_of_jobs(JOBS, JobQuery(tenant="acme"), limit=10, after=None)
    assert _ids(page) == ["a4", "a3", "a2", "a1"]
    assert last is None
    page, _ = page_of_jobs(JOBS, JobQuery(tenant=None), limit=10, after=None)
    assert _ids(page) == ["o1", "a4", "a3", "a2", "a1"]


def test_pages_continue_after_their_key_without_gaps_or_repeats() -> None:
    seen: list[str] = []
    after = None
    while True:
        page, after = page_of_jobs(JOBS, JobQuery(tenant=None), limit=2, after=after)
        seen += _ids(page)
        if after is None:
            break
        assert after == job_key(page[-1])
    assert seen == ["o1", "a4", "a3", "a2", "a1"]


def test_jobs_filter_by_status_and_kind() -> None:
    query = JobQuery(tenant="acme", status="running")
    assert _ids(page_of_jobs(JOBS, query, limit=10, after=None)[0]) == ["a3"]
    query = JobQuery(tenant=None, kind="recover")
    assert _ids(page_of_jobs(JOBS, query, limit=10, after=None)[0]) == ["a2"]


# -- a job's own error ------------------------------------------------------------------------


class _BuggyHistory:
    """A history whose every query fails the way a bug would."""

    broken = False

    def recoverable(
        self, subscription_id: str, *, since: datetime, until: datetime, statuses: Sequence[str]
    ) -> list[StoredCommand]:
        raise RuntimeError("boom")

    def attempts_made(self, subscription_id: str, *, since: datetime) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


def _runner(producer: FakeProducer) -> JobRunner:
    settings = Settings(topic_prefix="unit")
    kafka = FakeTransactionalKafka({})
    ports = Ports(
        codec=make_codec(),
        control=kafka.consumer(),
        open_events=kafka.reader,
        producer=producer,
        subscriptions=FakeSubscriptionTable({"s1": subscription("s1", "order.created")}),
        open_history=_BuggyHistory,
        clock=ManualClock(T0),
    )
    return JobRunner(settings, ports)


def _recover() -> Job:
    """A recover with its window fixed, so its first record is its end."""
    return new_job(
        "recover", tenant="acme", subscription_id="s1", since=T0, until=T0 + timedelta(hours=1)
    )


def test_an_unexpected_error_ends_the_job_failed_with_its_reason() -> None:
    producer = FakeProducer()
    ended = _runner(producer).run(_recover(), threading.Event())
    assert ended.status == "failed"
    assert ended.error == "unexpected RuntimeError: boom"
    [record] = producer.produced
    assert record.topic == "unit.control"
    assert record.value is not None
    assert make_codec().decode_job(record.value) == ended


def test_an_end_that_cannot_be_recorded_breaks_the_runner() -> None:
    unacknowledged = FakeProducer()
    unacknowledged.hold = True
    runner = _runner(unacknowledged)
    with pytest.raises(RunnerBroken, match="cannot record the end of job"):
        runner.run(_recover(), threading.Event())


def test_a_redeliver_record_ends_failed_since_redelivery_is_no_job() -> None:
    """The Avro contract admits the kind; the API redelivers at once and writes no such job."""
    redeliver = new_job("redeliver", tenant="acme", subscription_id=None)
    ended = _runner(FakeProducer()).run(redeliver, threading.Event())
    assert (ended.status, ended.error) == ("failed", "redeliver is not run as a job")


def test_a_cancelled_job_survives_avro() -> None:
    codec = make_codec()
    job = _job("cancelled")
    assert codec.decode_job(codec.encode_job(job)) == job
