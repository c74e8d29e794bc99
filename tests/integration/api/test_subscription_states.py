"""A subscription's states through the API with every service running: a 410 disables it and
says why, sends to a paused or disabled one answer 409 naming the state, and a paused one
holds the events published meanwhile and sends them when resumed, while other tenants'
webhooks keep flowing; after two rotations every valid secret verifies a webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from standardwebhooks.webhooks import Webhook

from api.http.app import create_app
from hookline.app.receiver import Answer, Receiver
from hookline.runtime.settings import Settings
from tests.conftest import Services
from tests.integration.api.conftest import (
    Api,
    pipeline_services,
    pipeline_settings,
    running,
)
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack_settings(services: Services) -> Iterator[Settings]:
    with pipeline_settings(services) as settings:
        yield settings


@pytest.fixture(scope="module")
def platform(stack_settings: Settings) -> Iterator[None]:
    with running(pipeline_services(stack_settings)):
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack_api(stack_settings: Settings, platform: None) -> AsyncIterator[Api]:
    app = create_app(stack_settings, CollectorRegistry())
    async with TestClient(TestServer(app)) as client:
        assert stack_settings.admin_token is not None
        yield Api(client, stack_settings.admin_token.value)


def _task(n: int, *, tenant: str = "default") -> dict[str, Any]:
    return {
        "type": "task.created",
        "tenant": tenant,
        "subject": {"type": "task", "id": f"t-{n}"},
        "data": {"id": f"t-{n}", "title": f"Task {n}", "project_id": "p-1"},
    }


async def _refused(api: Api, sub_id: str, state: str) -> list[dict[str, Any]]:
    """The test ping, a replay and a recover of `sub_id`: each must answer 409 naming `state`."""
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    problems = []
    for path, body in (("test", None), ("replay", {"since": since}), ("recover", {"since": since})):
        response = await api.call("POST", f"/v1/subscriptions/{sub_id}/{path}", json=body)
        text = await response.text()
        assert response.status == 409, f"{path}: {text}"
        assert response.content_type == "application/problem+json"
        problem: dict[str, Any] = await response.json(content_type=None)
        assert problem["subscription_status"] == state
        assert f"is {state}" in problem["detail"]
        assert '{"status": "active"}' in problem["detail"]
        problems.append(problem)
    return problems


async def test_a_410_disables_the_subscription_and_it_says_why(stack_api: Api) -> None:
    """Regression: a disabled subscription showed no reason, and test, replay and recover
    were accepted and dropped without a word."""
    api = stack_api
    async with Receiver(default=Answer(status=410)) as receiver:
        sub = await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            json={"url": receiver.url("/gone"), "event_types": ["task.*"]},
        )
        assert (sub["disabled_reason"], sub["disabled_at"]) == (None, None)
        await api.ok("POST", "/v1/events", 202, json=_task(1))

        async def disabled() -> dict[str, Any] | None:
            got: dict[str, Any] = await api.ok("GET", f"/v1/subscriptions/{sub['id']}")
            return got if got["status"] == "disabled" else None

        gone = await eventually_async(disabled, "the 410 disables it", timeout_s=40)
        assert gone["disabled_reason"] == "the endpoint answered 410 Gone"
        assert gone["disabled_at"] is not None
        for problem in await _refused(api, sub["id"], "disabled"):
            assert problem["disabled_reason"] == "the endpoint answered 410 Gone"
            assert problem["disabled_at"] == gone["disabled_at"]

        enabled = await api.ok("PATCH", f"/v1/subscriptions/{sub['id']}", json={"status": "active"})
        assert (enabled["disabled_reason"], enabled["disabled_at"]) == (None, None)
        await api.ok("POST", f"/v1/subscriptions/{sub['id']}/test", 202)


async def test_disabling_through_the_api_says_so(stack_api: Api) -> None:
    api = stack_api
    sub = await api.ok(
        "POST",
        "/v1/subscriptions",
        201,
        json={"url": "http://127.0.0.1:9/off", "event_types": ["task.*"], "status": "disabled"},
    )
    assert sub["disabled_reason"] == "disabled through the API"
    assert sub["disabled_at"] == sub["created_at"]
    await _refused(api, sub["id"], "disabled")


async def _history(api: Api, sub_id: str, status: str) -> set[str]:
    page = await api.ok(
        "GET", "/v1/deliveries", params={"subscription_id": sub_id, "status": status}
    )
    return {row["event_id"] for row in page["data"]}


async def test_a_paused_subscription_holds_events_and_sends_them_on_resume(
    stack_api: Api,
) -> None:
    """Regression: events published while a subscription was paused were never sent to it,
    not even once it was resumed."""
    api = stack_api
    async with Receiver() as receiver:
        sub = await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            json={"url": receiver.url("/held"), "event_types": ["task.*"]},
        )
        # a second subscription of the same tenant shows when the router has routed an event
        await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            json={"url": receiver.url("/probe"), "event_types": ["task.*"]},
        )
        await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            json={"url": receiver.url("/other"), "event_types": ["task.*"], "tenant": "other"},
        )
        before = (await api.ok("POST", "/v1/events", 202, json=_task(10)))["id"]
        await eventually_async(
            lambda: receiver.ids("/held") == [before], "the event before the pause", timeout_s=40
        )
        paused = await api.ok("PATCH", f"/v1/subscriptions/{sub['id']}", json={"status": "paused"})
        assert paused["paused_at"] == paused["updated_at"]
        await _refused(api, sub["id"], "paused")

        held = [(await api.ok("POST", "/v1/events", 202, json=_task(n)))["id"] for n in (11, 12)]
        elsewhere = (await api.ok("POST", "/v1/events", 202, json=_task(13, tenant="other")))["id"]
        await eventually_async(
            lambda: sorted(receiver.ids("/probe")) == sorted([before, *held]),
            "the router has routed the events published during the pause",
            timeout_s=40,
        )
        # another tenant's webhook flows while the pause holds this one's
        await eventually_async(
            lambda: receiver.ids("/other") == [elsewhere], "the other tenant's event", timeout_s=40
        )
        assert receiver.ids("/held") == [before], "nothing is sent while paused"

        resumed = await api.ok("PATCH", f"/v1/subscriptions/{sub['id']}", json={"status": "active"})
        assert resumed["paused_at"] is None
        await eventually_async(
            lambda: sorted(receiver.ids("/held")) == sorted([before, *held]),
            "the held events arrive on resume",
            timeout_s=40,
        )
        probe_bodies = {r.webhook_id: r.body for r in receiver.on("/probe")}
        assert all(probe_bodies[r.webhook_id] == r.body for r in receiver.on("/held"))

        async def delivered() -> bool:
            return await _history(api, sub["id"], "delivered") == {before, *held}

        await eventually_async(delivered, "the history shows them delivered", timeout_s=40)

        async def resume_job() -> dict[str, Any] | None:
            jobs = await api.ok("GET", "/v1/jobs", params={"kind": "replay", "status": "done"})
            found = [j for j in jobs["data"] if j["subscription_id"] == sub["id"]]
            return found[0] if found else None

        job = await eventually_async(resume_job, "the resume's replay job is done", timeout_s=40)
        assert (job["since"], job["until"]) == (paused["paused_at"], resumed["updated_at"])
        assert job["emitted"] == 2


async def test_after_two_rotations_every_valid_secret_verifies_the_webhook(
    stack_api: Api,
) -> None:
    """Regression: a second rotation dropped the first's secret, so a receiver still on it
    failed every webhook until it caught up."""
    api = stack_api
    async with Receiver() as receiver:
        sub = await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            json={"url": receiver.url("/rotated"), "event_types": ["task.*"]},
        )
        path = f"/v1/subscriptions/{sub['id']}/rotate-secret"
        first = await api.ok("POST", path, json={"expire_previous_in_s": 3600})
        second = await api.ok("POST", path)
        event_id = (await api.ok("POST", "/v1/events", 202, json=_task(20)))["id"]
        await eventually_async(
            lambda: receiver.ids("/rotated") == [event_id], "the webhook", timeout_s=40
        )
        [got] = receiver.on("/rotated")
        headers = dict(got.headers)
        assert len(headers["webhook-signature"].split(" ")) == 3
        for secret in (sub["secret"], first["secret"], second["secret"]):
            Webhook(secret).verify(got.body, headers)
