"""The whole story through the API with every service running: create a subscription,
publish, read the delivery and its attempts in the history, redeliver it (same webhook-id),
replay three events published before the subscription existed, recover a dead letter; and
a filtered subscription that receives exactly the events its filter matches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from api.http.app import create_app
from hookline.app.receiver import Answer, Receiver
from hookline.runtime.settings import Settings
from hookline.runtime.supervisor import Service
from tests.conftest import Services
from tests.integration.api.conftest import (
    Api,
    pipeline_services,
    pipeline_settings,
    running,
)
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration


@pytest.fixture
def e2e_settings(services: Services) -> Iterator[Settings]:
    with pipeline_settings(services) as settings:
        yield settings


@pytest.fixture
def platform(e2e_settings: Settings) -> Iterator[list[Service]]:
    services = pipeline_services(e2e_settings)
    with running(services):
        yield services


@pytest_asyncio.fixture(loop_scope="session")
async def e2e_api(e2e_settings: Settings, platform: list[Service]) -> AsyncIterator[Api]:
    app = create_app(e2e_settings, CollectorRegistry())
    async with TestClient(TestServer(app)) as client:
        assert e2e_settings.admin_token is not None
        yield Api(client, e2e_settings.admin_token.value)


def _task(n: int) -> dict[str, Any]:
    return {
        "type": "task.created",
        "subject": {"type": "task", "id": f"t-{n}"},
        "data": {"id": f"t-{n}", "title": f"Task {n}", "project_id": "p-1"},
    }


async def _delivery(api: Api, event_id: str, status: str) -> dict[str, Any] | None:
    page = await api.ok("GET", "/v1/deliveries", params={"event_id": event_id})
    for row in page["data"]:
        if row["status"] == status:
            found: dict[str, Any] = await api.ok("GET", f"/v1/deliveries/{row['id']}")
            return found
    return None


async def _job_done(api: Api, job_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job: dict[str, Any] = await api.ok("GET", f"/v1/jobs/{job_id}")
        return job if job["status"] != "running" else None

    done: dict[str, Any] = await eventually_async(check, f"job {job_id} ends", timeout_s=40)
    return done


async def test_the_whole_story(e2e_api: Api) -> None:
    api = e2e_api
    async with Receiver(behaviours={"/down": Answer(status=500)}) as receiver:
        since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
        # a probe subscription shows when the router has handled the early events, so the
        # subscription under test really is created after they were routed
        probe = await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            json={"url": receiver.url("/probe"), "event_types": ["task.*"]},
        )
        early = [(await api.ok("POST", "/v1/events", 202, json=_task(n)))["id"] for n in range(3)]
        for early_id in early:
            await eventually_async(
                partial(_count, receiver, "/probe", early_id, 1),
                "the probe gets the event",
                timeout_s=40,
            )
        await api.ok("DELETE", f"/v1/subscriptions/{probe['id']}", 204)

        sub = await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            json={"url": receiver.url("/ok"), "event_types": ["task.*"]},
        )
        receiver.secrets.append(sub["secret"])
        event_id = (await api.ok("POST", "/v1/events", 202, json=_task(9)))["id"]

        delivered = await eventually_async(
            partial(_delivery, api, event_id, "delivered"), "the delivery delivered", timeout_s=40
        )
        assert delivered["subscription_id"] == sub["id"]
        assert delivered["attempts"][0]["status_code"] == 200
        assert [r.webhook_id for r in receiver.on("/ok")] == [event_id]
        assert all(r.verified for r in receiver.on("/ok"))

        # redeliver: the same webhook-id arrives again, and the history records the attempt
        await api.ok("POST", f"/v1/deliveries/{delivered['id']}/redeliver", 202)
        await eventually_async(
            partial(_count, receiver, "/ok", event_id, 2), "the redelivery arrives", timeout_s=40
        )

        async def two_attempts() -> bool:
            got = await api.ok("GET", f"/v1/deliveries/{delivered['id']}")
            return len(got["attempts"]) >= 2

        await eventually_async(two_attempts, "two attempts in the history", timeout_s=40)

        # replay: the three events from before the subscription existed arrive too
        job = await api.ok(
            "POST", f"/v1/subscriptions/{sub['id']}/replay", 202, json={"since": since}
        )
        done = await _job_done(api, job["id"])
        assert (done["status"], done["emitted"]) == ("done", 4), done
        for early_id in early:
            await eventually_async(
                partial(_count, receiver, "/ok", early_id, 1),
                "the replayed event arrives",
                timeout_s=40,
            )

        # recover: a delivery dead-lettered against a failing endpoint succeeds once it is back
        down = await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            json={"url": receiver.url("/down"), "event_types": ["meeting.*"]},
        )
        receiver.secrets.append(down["secret"])
        meeting = (
            await api.ok(
                "POST",
                "/v1/events",
                202,
                json={
                    "type": "meeting.ended",
                    "subject": {"type": "meeting", "id": "m-1"},
                    "data": {
                        "id": "m-1",
                        "title": "Retro",
                        "ended_at": "2025-01-01T10:00:00Z",
                        "attendee_ids": [],
                    },
                },
            )
        )["id"]
        dead = await eventually_async(
            partial(_delivery, api, meeting, "dead"), "the delivery dead", timeout_s=40
        )
        assert len(dead["attempts"]) == 3
        receiver.behaviours["/down"] = Answer(status=200)
        job = await api.ok(
            "POST", f"/v1/subscriptions/{down['id']}/recover", 202, json={"since": since}
        )
        done = await _job_done(api, job["id"])
        assert (done["status"], done["emitted"]) == ("done", 1), done
        recovered = await eventually_async(
            partial(_delivery, api, meeting, "delivered"), "the recovered delivery", timeout_s=40
        )
        assert recovered["id"] == dead["id"]
        assert receiver.on("/down")[-1].webhook_id == meeting


async def _count(receiver: Receiver, path: str, webhook_id: str, count: int) -> bool:
    return sum(1 for r in receiver.on(path) if r.webhook_id == webhook_id) >= count


FILTER: Final = {
    "data.project_id": {"$in": ["p-high", "p-urgent"]},
    "$or": [{"actor": {"$exists": True}}, {"data.assignee_id": {"$exists": True}}],
}


def _filtered_task(project: str, *, actor: bool, assignee: str | None) -> dict[str, Any]:
    """A task event; every one has the same subject, so all share one partition of the
    events topic and the router routes them in the order they were published."""
    return {
        "type": "task.created",
        "subject": {"type": "task", "id": "t-filtered"},
        "actor": {"type": "user", "id": "u-1"} if actor else None,
        "data": {"id": "t-filtered", "title": "T", "project_id": project, "assignee_id": assignee},
    }


async def _history_ids(api: Api, subscription_id: str) -> set[str]:
    page = await api.ok("GET", "/v1/deliveries", params={"subscription_id": subscription_id})
    return {row["event_id"] for row in page["data"]}


async def test_a_filter_sends_the_matching_events_only(e2e_api: Api) -> None:
    api = e2e_api
    async with Receiver() as receiver:
        sub = await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            json={"url": receiver.url("/filtered"), "event_types": ["task.*"], "filter": FILTER},
        )
        assert sub["filter"] == FILTER
        receiver.secrets.append(sub["secret"])
        published = [
            (True, _filtered_task("p-high", actor=True, assignee=None)),
            (False, _filtered_task("p-low", actor=True, assignee="u-2")),  # not in $in
            (False, _filtered_task("p-urgent", actor=False, assignee=None)),  # neither of $or
            (True, _filtered_task("p-urgent", actor=False, assignee="u-2")),
            (
                False,  # task.assigned has no project_id: the test sees a missing field
                {
                    "type": "task.assigned",
                    "subject": {"type": "task", "id": "t-filtered"},
                    "actor": {"type": "user", "id": "u-1"},
                    "data": {"id": "t-filtered", "title": "T", "assignee_id": "u-2"},
                },
            ),
            (True, _filtered_task("p-high", actor=True, assignee="u-3")),  # the marker, last
        ]
        ids = [
            ((await api.ok("POST", "/v1/events", 202, json=body))["id"], wanted)
            for wanted, body in published
        ]
        wanted = {event_id for event_id, match in ids if match}
        marker = ids[-1][0]

        # the history shows the marker's delivery only after every earlier command to this
        # subscription, which sits before it on the same deliveries partition
        async def marker_in_history() -> set[str] | None:
            seen = await _history_ids(api, sub["id"])
            return seen if marker in seen else None

        seen = await eventually_async(marker_in_history, "the marker in history", timeout_s=40)
        assert seen == wanted

        async def all_received() -> bool:
            return {r.webhook_id for r in receiver.on("/filtered")} >= wanted

        await eventually_async(all_received, "the matching events arrive", timeout_s=40)
        assert sorted(r.webhook_id for r in receiver.on("/filtered")) == sorted(wanted)
        assert all(r.verified for r in receiver.on("/filtered"))
