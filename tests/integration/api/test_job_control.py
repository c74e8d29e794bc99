"""Jobs cannot stop the platform: job times are bounded, a job's own error ends that job
`failed` while the replayer goes on, jobs are listed per tenant and a running job can be
cancelled.

Regression: a replay with `since` 1969-12-31T23:59:59Z reached `offsets_for_times` as a
negative timestamp, the broker refused it, the replayer raised and every service stopped;
the job stayed `running`, so each restart crashed again.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Message, Producer
from prometheus_client import CollectorRegistry

from api.http.context import RESOURCES
from api.model.jobs import JobTable, new_job
from api.replayer import job_runner
from api.replayer.job_runner import JobRunner
from api.replayer.service import Replayer
from core.records import DomainEvent, Job, Ref, Subscription, utc_ms
from hookline.runtime.codecs import open_codec
from hookline.runtime.kafka import producer_config
from hookline.runtime.settings import Settings
from tests.integration.api.conftest import Api, drop_schema, subscription_body
from tests.waiting import eventually, eventually_async

pytestmark = pytest.mark.integration

BEFORE_EPOCH = "1969-12-31T23:59:59Z"


async def _job_when(
    api: Api, job_id: str, ready: Callable[[dict[str, Any]], bool], timeout_s: float = 30.0
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job: dict[str, Any] = await api.ok("GET", f"/v1/jobs/{job_id}")
        return job if ready(job) else None

    return await eventually_async(check, f"job {job_id} in the awaited state", timeout_s=timeout_s)


async def _ended(api: Api, job_id: str) -> dict[str, Any]:
    return await _job_when(api, job_id, lambda j: j["status"] != "running")


async def _problem(api: Api, method: str, path: str, status: int, **kwargs: Any) -> Any:
    response = await api.call(method, path, **kwargs)
    body = await response.json(content_type=None)
    assert response.status == status, body
    assert response.content_type == "application/problem+json"
    return body


def _fields(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem["errors"]]


def _replayed(registry: CollectorRegistry, status: str) -> float:
    labels = {"kind": "replay", "status": status}
    return registry.get_sample_value("hookline_replayer_jobs_total", labels) or 0.0


def _task(n: int) -> dict[str, Any]:
    return {
        "type": "task.created",
        "subject": {"type": "task", "id": f"t-{n}"},
        "data": {"id": f"t-{n}", "title": f"Task {n}", "project_id": "p-1"},
    }


# -- (a) the times a job may name -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"since": BEFORE_EPOCH}, "since"),
        ({"since": "2024-01-01T00:00:00Z", "until": "9999-12-31T00:00:00Z"}, "until"),
        ({"since": "2024-01-01T00:00:00Z", "until": "9999-12-31T23:59:59-01:00"}, "until"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
        ({"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z"}, "until"),
    ],
)
async def test_a_replay_outside_what_kafka_can_look_up_is_refused(
    api: Api, body: dict[str, str], field: str
) -> None:
    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    problem = await _problem(api, "POST", f"/v1/subscriptions/{sub['id']}/replay", 422, json=body)
    assert _fields(problem) == [field]
    jobs = await api.ok("GET", "/v1/jobs")
    assert all(j["subscription_id"] != sub["id"] for j in jobs["data"])  # no job was started


async def test_a_recover_before_the_epoch_is_refused(api: Api) -> None:
    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    path = f"/v1/subscriptions/{sub['id']}/recover"
    problem = await _problem(api, "POST", path, 422, json={"since": BEFORE_EPOCH})
    assert _fields(problem) == ["since"]
    assert "1970-01-01T00:00:00.000Z" in problem["errors"][0]["message"]


# -- (b) a job's own error ends that job, not the replayer -------------------------------------


async def test_a_broker_error_fails_the_job_and_the_next_job_still_runs(
    api: Api,
    api_settings: Settings,
    replayer: Replayer,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The original crash: a job recorded before the API checked times reaches the broker's
    `offsets_for_times` with a negative timestamp (the runner's own check is switched off
    so the real broker answers)."""
    monkeypatch.setattr(job_runner, "_check_times", lambda _job: None)
    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    poisoned = new_job(
        "replay",
        tenant="default",
        subscription_id=sub["id"],
        since=datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
    )
    res = api.client.app[RESOURCES]
    await res.producer.send(
        api_settings.topic("control"),
        key=poisoned.id,
        value=res.codec.codec.encode_job(poisoned),
    )
    assert await asyncio.to_thread(
        res.jobs.wait_for, poisoned.id, updated_at=poisoned.updated_at, timeout_s=30
    )
    failed = await _ended(api, poisoned.id)
    assert failed["status"] == "failed", failed
    assert failed["error"].startswith("unexpected KafkaException"), failed

    since = datetime.now(UTC).isoformat()  # after every other test's events
    await api.ok("POST", "/v1/events", 202, json=_task(1))
    job = await api.ok("POST", f"/v1/subscriptions/{sub['id']}/replay", 202, json={"since": since})
    done = await _ended(api, job["id"])
    assert (done["status"], done["emitted"]) == ("done", 1), done
    assert replayer.ready
    assert _replayed(registry, "failed") >= 1


async def test_an_unexpected_error_in_a_scan_fails_only_that_job(
    api: Api, replayer: Replayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    since = datetime.now(UTC).isoformat()  # after every other test's events
    await api.ok("POST", "/v1/events", 202, json=_task(2))
    scan = JobRunner._replay_command

    def broken_scan(self: JobRunner, job: Job, s: Subscription, message: Message) -> Any:
        if job.subscription_id == sub["id"]:
            raise ZeroDivisionError("a bug in the scan")
        return scan(self, job, s, message)

    monkeypatch.setattr(JobRunner, "_replay_command", broken_scan)
    path = f"/v1/subscriptions/{sub['id']}/replay"
    job = await api.ok("POST", path, 202, json={"since": since})
    failed = await _ended(api, job["id"])
    assert failed["status"] == "failed"
    assert failed["error"] == "unexpected ZeroDivisionError: a bug in the scan"

    monkeypatch.undo()
    again = await api.ok("POST", path, 202, json={"since": since})
    done = await _ended(api, again["id"])
    assert (done["status"], done["emitted"]) == ("done", 1), done
    assert (await api.ok("GET", f"/v1/jobs/{job['id']}"))["status"] == "failed"


def test_a_failing_job_stays_failed_across_a_restart(settings: Settings) -> None:
    """A job left `running` by the old code (since before the epoch) used to crash every
    restart: now the first run records it failed and the next start leaves it alone."""
    from hookline.runtime.topics import ensure_topics

    ensure_topics(settings)
    runtime = open_codec(settings, client_id="test-restart")
    producer = Producer(producer_config(settings, client_id="test-restart"))
    job = new_job(
        "replay",
        tenant="default",
        subscription_id="sub-x",
        since=datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
    )
    producer.produce(settings.topic("control"), key=job.id, value=runtime.codec.encode_job(job))
    assert producer.flush(30) == 0
    table = JobTable(settings, runtime.codec, client_id="test-restart-jobs")
    table.start()
    try:
        first = _run_replayer_until(settings, lambda: _status(table, job.id) == "failed")
        recorded = table.get(job.id)
        assert recorded is not None
        assert recorded.error is not None
        assert recorded.error.startswith("since must be from 1970"), recorded.error
        assert first.ready
        second = _run_replayer_until(settings, lambda: True)
        assert second.ready  # caught up, and did not stop
        assert table.get(job.id) == recorded  # not run again: no new record
    finally:
        table.close()
        runtime.close()
        drop_schema(settings)


def _status(table: JobTable, job_id: str) -> str | None:
    job = table.get(job_id)
    return None if job is None else job.status


def _run_replayer_until(settings: Settings, done: Callable[[], bool]) -> Replayer:
    """Start a replayer, wait until it is ready and `done`, and stop it; it must not fail."""
    service = Replayer(settings, CollectorRegistry())
    stopping = threading.Event()
    thread = threading.Thread(target=service.run, args=(stopping,))
    thread.start()
    try:
        eventually(
            lambda: service.ready or not thread.is_alive(), "the replayer is ready", timeout_s=60
        )
        eventually(lambda: done() or not thread.is_alive(), "the replayer did what was awaited")
        assert thread.is_alive(), "the replayer stopped"
    finally:
        stopping.set()
        thread.join(30)
    return service


# -- (c) the jobs list ------------------------------------------------------------------------


async def test_jobs_are_listed_per_tenant_filtered_and_paged(api: Api, replayer: Replayer) -> None:
    token = await api.tenant_token(f"list-{uuid.uuid4().hex[:6]}")
    mine = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body(), token=token)
    theirs = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    since = {"since": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    created = []
    for action in ("replay", "recover", "replay"):
        path = f"/v1/subscriptions/{mine['id']}/{action}"
        created.append(await api.ok("POST", path, 202, json=since, token=token))
    other = await api.ok("POST", f"/v1/subscriptions/{theirs['id']}/replay", 202, json=since)
    for job in [*created, other]:
        await _ended(api, job["id"])

    listed = await api.ok("GET", "/v1/jobs", token=token)
    assert [j["id"] for j in listed["data"]] == [j["id"] for j in reversed(created)]
    assert listed["next_cursor"] is None
    everyone = await api.ok("GET", "/v1/jobs", params={"limit": "100"})
    assert {j["id"] for j in [*created, other]} <= {j["id"] for j in everyone["data"]}

    recovers = await api.ok("GET", "/v1/jobs", token=token, params={"kind": "recover"})
    assert [j["id"] for j in recovers["data"]] == [created[1]["id"]]
    running = await api.ok("GET", "/v1/jobs", token=token, params={"status": "running"})
    assert running["data"] == []
    done = await api.ok("GET", "/v1/jobs", token=token, params={"status": "done"})
    assert len(done["data"]) == 3

    pages: list[str] = []
    params = {"limit": "2"}
    while True:
        page = await api.ok("GET", "/v1/jobs", token=token, params=params)
        assert len(page["data"]) <= 2
        pages += [j["id"] for j in page["data"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": "2", "cursor": page["next_cursor"]}
    assert pages == [j["id"] for j in reversed(created)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "finished"}, "status"),
        ({"kind": "rebuild"}, "kind"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
async def test_a_bad_jobs_filter_is_a_422_naming_it(
    api: Api, params: dict[str, str], field: str
) -> None:
    problem = await _problem(api, "GET", "/v1/jobs", 422, params=params)
    assert _fields(problem) == [field]


# -- (d) cancel -------------------------------------------------------------------------------


def _publish_events(settings: Settings, count: int) -> None:
    """`count` task events straight onto the events topic (faster than the API)."""
    runtime = open_codec(settings, client_id="test-cancel-events")
    producer = Producer(producer_config(settings, client_id="test-cancel-events", linger_ms=20))
    try:
        now = utc_ms(datetime.now(UTC))
        for n in range(count):
            event = DomainEvent(
                id=str(uuid.uuid4()),
                type="task.created",
                tenant="default",
                occurred_at=now,
                subject=Ref("task", f"c-{n}"),
                actor=None,
                data={"id": f"c-{n}", "title": "t", "project_id": "p"},
            )
            producer.produce(
                settings.topic("events"), key=f"c-{n}", value=runtime.codec.encode_event(event)
            )
        assert producer.flush(30) == 0
    finally:
        runtime.close()


async def test_a_running_job_is_cancelled_and_an_ended_one_answers_409(
    api: Api,
    api_settings: Settings,
    replayer: Replayer,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = 400
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    _publish_events(api_settings, events)
    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    scan = JobRunner._replay_command

    def slow_scan(self: JobRunner, job: Job, s: Subscription, message: Message) -> Any:
        time.sleep(0.01)  # 400 events take 4 s: long enough to cancel mid-way
        return scan(self, job, s, message)

    monkeypatch.setattr(JobRunner, "_replay_command", slow_scan)
    cancelled_before = _replayed(registry, "cancelled")
    job = await api.ok("POST", f"/v1/subscriptions/{sub['id']}/replay", 202, json={"since": since})
    await _job_when(api, job["id"], lambda j: j["scanned"] > 0)  # a checkpoint: it runs

    answer = await api.ok("POST", f"/v1/jobs/{job['id']}/cancel", 202)
    assert answer["status"] == "cancelled"
    await eventually_async(  # the runner's own record
        lambda: _replayed(registry, "cancelled") > cancelled_before,
        "the replayer records the cancel",
    )
    final = await api.ok("GET", f"/v1/jobs/{job['id']}")
    assert final["status"] == "cancelled"
    assert 0 < final["scanned"] < events, final

    again = await _problem(api, "POST", f"/v1/jobs/{job['id']}/cancel", 409)
    assert "cancelled" in again["detail"]
    monkeypatch.undo()
    quick = await api.ok(
        "POST", f"/v1/subscriptions/{sub['id']}/replay", 202, json={"since": since}
    )
    assert (await _ended(api, quick["id"]))["status"] == "done"
    ended = await _problem(api, "POST", f"/v1/jobs/{quick['id']}/cancel", 409)
    assert "done" in ended["detail"]


async def test_another_tenants_job_cannot_be_cancelled_or_listed(
    api: Api, replayer: Replayer
) -> None:
    sub = await api.ok("POST", "/v1/subscriptions", 201, json=subscription_body())
    since = {"since": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    job = await api.ok("POST", f"/v1/subscriptions/{sub['id']}/replay", 202, json=since)
    token = await api.tenant_token(f"other-{uuid.uuid4().hex[:6]}")
    await _problem(api, "POST", f"/v1/jobs/{job['id']}/cancel", 404, token=token)
    await _problem(api, "GET", f"/v1/jobs/{job['id']}", 404, token=token)
    listed = await api.ok("GET", "/v1/jobs", token=token)
    assert listed["data"] == []
    await _problem(api, "POST", "/v1/jobs/no-such-job/cancel", 404)
