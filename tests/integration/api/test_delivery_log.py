"""What is delivered and what the history keeps, with every service running against the real
broker and database: the event's `changes` in the webhook body, a form-encoded subscription's
`payload=` signed over the exact bytes, each attempt's log (the request as sent with its
signatures and custom header values redacted, the response's head, the phases' times), and a
redelivery numbered on from the attempts before it, with its origin."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from standardwebhooks.webhooks import Webhook

from api.http.app import create_app
from core.signing import verify
from hookline.app.receiver import Answer, FailThenAnswer, Receiver
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

FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def log_settings(services: Services) -> Iterator[Settings]:
    with pipeline_settings(services) as settings:
        yield settings


@pytest.fixture(scope="module")
def platform(log_settings: Settings) -> Iterator[None]:
    with running(pipeline_services(log_settings)):
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def log_api(log_settings: Settings, platform: None) -> AsyncIterator[Api]:
    app = create_app(log_settings, CollectorRegistry())
    async with TestClient(TestServer(app)) as client:
        assert log_settings.admin_token is not None
        yield Api(client, log_settings.admin_token.value)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as serving:
        yield serving


def _assigned(n: int) -> dict[str, Any]:
    return {
        "type": "task.assigned",
        "subject": {"type": "task", "id": f"t-{n}"},
        "actor": {"type": "user", "id": "u-1"},
        "data": {"id": f"t-{n}", "title": "Write docs", "assignee_id": "u-2"},
        "changes": {"assignee_id": {"from": None, "to": "u-2"}},
    }


async def _subscribe(api: Api, receiver: Receiver, path: str, **fields: Any) -> dict[str, Any]:
    body = {"url": receiver.url(path), "event_types": ["task.*"], **fields}
    sub: dict[str, Any] = await api.ok("POST", "/v1/subscriptions", 201, json=body)
    receiver.secrets.append(sub["secret"])
    return sub


async def _arrived(receiver: Receiver, path: str, webhook_id: str, count: int = 1) -> bool:
    return sum(1 for r in receiver.on(path) if r.webhook_id == webhook_id) >= count


def _verify_both_ways(body: bytes, headers: dict[str, str], secret: str) -> None:
    Webhook(secret).verify(body, headers, json_parse=False)  # a form body is not JSON
    verify(
        msg_id=headers["webhook-id"],
        timestamp_s=int(headers["webhook-timestamp"]),
        body=body,
        signature_header=headers["webhook-signature"],
        secret=secret,
        now_s=int(time.time()),
    )


async def test_the_body_carries_the_events_changes(log_api: Api, receiver: Receiver) -> None:
    """Regression: `changes` was accepted on publish and never delivered."""
    await _subscribe(log_api, receiver, "/changes")
    event_id = (await log_api.ok("POST", "/v1/events", 202, json=_assigned(1)))["id"]
    await eventually_async(partial(_arrived, receiver, "/changes", event_id), "the webhook")
    [got] = receiver.on("/changes")
    assert got.verified
    body = orjson.loads(got.body)
    assert body["changes"] == {"assignee_id": {"from": None, "to": "u-2"}}
    assert list(body)[-2:] == ["data", "changes"]


async def test_a_form_subscription_gets_payload_signed_over_the_bytes_sent(
    log_api: Api, receiver: Receiver
) -> None:
    sub = await _subscribe(log_api, receiver, "/form", content_type=FORM)
    assert sub["content_type"] == FORM
    assert (await log_api.ok("GET", f"/v1/subscriptions/{sub['id']}"))["content_type"] == FORM
    event_id = (await log_api.ok("POST", "/v1/events", 202, json=_assigned(2)))["id"]
    await eventually_async(partial(_arrived, receiver, "/form", event_id), "the webhook")
    [got] = receiver.on("/form")
    assert got.headers["content-type"] == FORM
    assert got.body.startswith(b"payload=")
    [payload] = parse_qs(got.body.decode("ascii"), strict_parsing=True)["payload"]
    assert orjson.loads(payload)["data"]["id"] == "t-2"
    _verify_both_ways(got.body, dict(got.headers), sub["secret"])

    # back to JSON: the next webhook is the JSON itself, signed as such
    patched = await log_api.ok(
        "PATCH", f"/v1/subscriptions/{sub['id']}", json={"content_type": "application/json"}
    )
    assert patched["content_type"] == "application/json"
    again = (await log_api.ok("POST", "/v1/events", 202, json=_assigned(3)))["id"]
    await eventually_async(partial(_arrived, receiver, "/form", again), "the JSON webhook")
    got = receiver.on("/form")[-1]
    assert got.headers["content-type"] == "application/json"
    assert orjson.loads(got.body)["data"]["id"] == "t-3"
    _verify_both_ways(got.body, dict(got.headers), sub["secret"])


@pytest.mark.parametrize("value", ["text/plain", "application/xml", "", "APPLICATION/JSON"])
async def test_an_unknown_content_type_is_refused_naming_it(log_api: Api, value: str) -> None:
    body = {"url": "https://example.com/hooks/ct", "event_types": ["*"], "content_type": value}
    response = await log_api.call("POST", "/v1/subscriptions", json=body)
    assert response.status == 422
    problem = await response.json()
    assert [error["field"] for error in problem["errors"]] == ["content_type"]


async def _attempts(api: Api, sub: dict[str, Any], count: int) -> dict[str, Any] | None:
    """The subscription's one delivery once its history holds `count` attempts."""
    page = await api.ok("GET", "/v1/deliveries", params={"subscription_id": sub["id"]})
    for row in page["data"]:
        found: dict[str, Any] = await api.ok("GET", f"/v1/deliveries/{row['id']}")
        if len(found["attempts"]) >= count:
            return found
    return None


async def test_the_history_keeps_each_attempts_log_and_numbers_redeliveries_on(
    log_api: Api,
) -> None:
    """Regression: the history kept a response excerpt only, and a redeliver was recorded as
    `attempt: 1` again. A receiver of its own, so the first attempt opens a connection."""
    async with Receiver(behaviours={"/flaky": FailThenAnswer(failures=1)}) as receiver:
        await _history_of_a_flaky_endpoint(log_api, receiver)


async def _history_of_a_flaky_endpoint(api: Api, receiver: Receiver) -> None:
    sub = await _subscribe(api, receiver, "/flaky", headers={"X-Api-Key": "k3y-s3cret"})
    event_id = (await api.ok("POST", "/v1/events", 202, json=_assigned(4)))["id"]
    delivery = await eventually_async(
        partial(_attempts, api, sub, 2), "a failed attempt and its retry"
    )
    failed, retried = delivery["attempts"]
    assert (failed["attempt"], failed["origin"], failed["status_code"]) == (1, "route", 500), (
        delivery["attempts"]
    )
    assert (retried["attempt"], retried["origin"], retried["status_code"]) == (2, "retry", 200)

    sent = receiver.on("/flaky")[0]
    request = failed["request"]
    assert request["body"] == sent.body.decode()
    headers = request["headers"]
    assert headers["webhook-id"] == event_id
    assert headers["webhook-timestamp"] == sent.headers["webhook-timestamp"]
    assert headers["webhook-signature"] == "v1,<redacted>"
    assert headers["x-api-key"] == "<redacted>"
    assert headers["content-type"] == "application/json"
    assert headers["host"] == sent.headers["host"]
    assert headers["content-length"] == str(len(sent.body))
    document = orjson.dumps(delivery)
    assert sent.headers["webhook-signature"].split(",", 1)[1].encode() not in document
    assert b"k3y-s3cret" not in document

    response = failed["response"]
    assert response["status_code"] == 500
    assert response["headers"]["content-length"] == str(len(response["body_excerpt"]))
    assert "server" in response["headers"]
    timings = failed["timings_ms"]
    assert timings["connect"] is not None, "the first attempt opened a connection"
    assert timings["ttfb"] is not None
    assert timings["ttfb"] <= timings["total"] == failed["duration_ms"]
    assert timings["dns"] is None, "an IP literal is not looked up"

    sent_again = await api.ok("POST", f"/v1/deliveries/{delivery['id']}/redeliver", 202)
    assert (sent_again["attempt"], sent_again["origin"]) == (3, "redeliver")
    again = await eventually_async(partial(_attempts, api, sub, 3), "the redelivery in the history")
    redelivered = again["attempts"][2]
    assert (redelivered["attempt"], redelivered["origin"]) == (3, "redeliver"), again["attempts"]
    assert redelivered["status_code"] == 200
    assert redelivered["request"]["headers"]["webhook-id"] == event_id, "the same webhook-id"
    assert again["id"] == delivery["id"]


async def test_a_recover_numbers_its_attempt_on_with_its_origin(
    log_api: Api, receiver: Receiver
) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    receiver.behaviours["/down"] = Answer(status=500)
    sub = await _subscribe(log_api, receiver, "/down", event_types=["meeting.*"])
    meeting = {
        "type": "meeting.ended",
        "subject": {"type": "meeting", "id": "m-1"},
        "data": {
            "id": "m-1",
            "title": "Retro",
            "ended_at": "2026-01-01T10:00:00Z",
            "attendee_ids": [],
        },
    }
    await log_api.ok("POST", "/v1/events", 202, json=meeting)
    dead = await eventually_async(partial(_attempts, log_api, sub, 3), "three failed attempts")
    assert [(a["attempt"], a["origin"]) for a in dead["attempts"]] == [
        (1, "route"),
        (2, "retry"),
        (3, "retry"),
    ]

    async def dead_in_the_history() -> bool:
        got: dict[str, Any] = await log_api.ok("GET", f"/v1/deliveries/{dead['id']}")
        return bool(got["status"] == "dead")

    await eventually_async(dead_in_the_history, "the delivery dead")
    receiver.behaviours["/down"] = Answer(status=200)
    job = await log_api.ok(
        "POST", f"/v1/subscriptions/{sub['id']}/recover", 202, json={"since": since}
    )
    recovered = await eventually_async(
        partial(_attempts, log_api, sub, 4), f"the recovered attempt (job {job['id']})"
    )
    fourth = recovered["attempts"][3]
    assert (fourth["attempt"], fourth["origin"], fourth["status_code"]) == (4, "recover", 200)


async def test_a_replay_numbers_its_attempt_on_with_its_origin(
    log_api: Api, receiver: Receiver
) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    sub = await _subscribe(log_api, receiver, "/replayed", event_types=["task.created"])
    created = {
        "type": "task.created",
        "subject": {"type": "task", "id": "t-9"},
        "data": {"id": "t-9", "title": "Replay me", "project_id": "p-1"},
    }
    await log_api.ok("POST", "/v1/events", 202, json=created)
    await eventually_async(partial(_attempts, log_api, sub, 1), "the first attempt")
    job = await log_api.ok(
        "POST", f"/v1/subscriptions/{sub['id']}/replay", 202, json={"since": since}
    )
    replayed = await eventually_async(
        partial(_attempts, log_api, sub, 2), f"the replayed attempt (job {job['id']})"
    )
    assert [(a["attempt"], a["origin"]) for a in replayed["attempts"]] == [
        (1, "route"),
        (2, "replay"),
    ]
