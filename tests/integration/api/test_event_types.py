"""Event types registered at run time, on the real broker: a router and a deliverer that were
running before `invoice.paid` existed route and deliver it, published through the API and
through the producer library, with the exact data; versions evolve only compatibly; the
catalog survives a restart and a rebuild from the topic equals it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import psycopg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from api.http.app import create_app
from core.json_value import JsonValue
from hookline.app.receiver import Receiver
from hookline.runtime.codecs import open_codec
from hookline.runtime.settings import Settings
from producers.outbox import OutboxRelay, write_outbox
from producers.publisher import Publisher, build_event
from schemas.catalog import EventCatalog, catalog_of, load_catalog
from tests.conftest import Services
from tests.integration.api.conftest import (
    Api,
    pipeline_settings,
    running,
)
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration

router_service = pytest.importorskip("router.service")
deliverer_service = pytest.importorskip("deliverer.service")

INVOICE_PAID: Final[dict[str, Any]] = {
    "type": "record",
    "name": "InvoicePaid",
    "namespace": "com.example.billing",
    "doc": "An invoice was paid in full.",
    "fields": [
        {"name": "invoice_id", "type": "string"},
        {"name": "amount_cents", "type": "long"},
        {"name": "currency", "type": "string"},
        {"name": "paid_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
PAID: Final[dict[str, JsonValue]] = {
    "invoice_id": "inv-1",
    "amount_cents": 4200,
    "currency": "EUR",
    "paid_at": "2026-01-01T12:00:00.000Z",
}


def _v2() -> dict[str, Any]:
    extra = {"name": "payer_email", "type": ["null", "string"], "default": None}
    return {**INVOICE_PAID, "fields": [*INVOICE_PAID["fields"], extra]}


@pytest.fixture(scope="module")
def settings_(services: Services) -> Iterator[Settings]:
    with pipeline_settings(services) as settings:
        yield settings


@pytest.fixture(scope="module")
def pipeline(settings_: Settings) -> Iterator[None]:
    """A router and a deliverer started before any custom type exists."""
    registry = CollectorRegistry()
    services = [
        router_service.Router(settings_, registry),
        deliverer_service.Deliverer(settings_, registry),
    ]
    with running(services):
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(settings_: Settings, pipeline: None) -> AsyncIterator[Api]:
    async with TestClient(TestServer(create_app(settings_, CollectorRegistry()))) as client:
        assert settings_.admin_token is not None
        yield Api(client, settings_.admin_token.value)


def _event(data: dict[str, Any], *, event_type: str = "invoice.paid") -> dict[str, Any]:
    return {"type": event_type, "subject": {"type": "invoice", "id": "inv-1"}, "data": data}


async def _received(receiver: Receiver, path: str, event_id: str) -> dict[str, Any] | None:
    for request in receiver.on(path):
        if request.webhook_id == event_id:
            body: dict[str, Any] = json.loads(request.body)
            return body
    return None


async def _delivered(receiver: Receiver, path: str, event_id: str) -> dict[str, Any]:
    async def arrived() -> dict[str, Any] | None:
        return await _received(receiver, path, event_id)

    body: dict[str, Any] = await eventually_async(arrived, f"{event_id} arrives", timeout_s=40)
    return body


async def test_a_type_registered_at_run_time_is_routed_and_delivered(
    api: Api, settings_: Settings
) -> None:
    tenant = await api.tenant_token("billing")
    refused = await api.call(
        "POST",
        "/v1/event-types",
        token=tenant,
        json={"name": "invoice.paid", "description": "x", "schema": INVOICE_PAID},
    )
    assert refused.status == 403
    for method, path in (("POST", "/task.created/versions"), ("PATCH", "/task.created")):
        body = {"schema": INVOICE_PAID} if method == "POST" else {"deprecated": True}
        answer = await api.call(method, f"/v1/event-types{path}", token=tenant, json=body)
        assert answer.status == 403, path
    platform = await api.call("PATCH", "/v1/event-types/webhook.ping", json={"deprecated": True})
    assert platform.status == 403

    created = await api.ok(
        "POST",
        "/v1/event-types",
        201,
        json={
            "name": "invoice.paid",
            "description": "An invoice was paid in full.",
            "schema": INVOICE_PAID,
            "examples": [PAID],
        },
    )
    assert created["version"] == 1
    assert created["versions"][0]["examples"] == [PAID]
    again = await api.call(
        "POST",
        "/v1/event-types",
        json={"name": "invoice.paid", "description": "x", "schema": INVOICE_PAID},
    )
    assert again.status == 409
    listed = await api.ok("GET", "/v1/event-types", token=tenant)
    entry = next(e for e in listed["data"] if e["name"] == "invoice.paid")
    assert (entry["version"], entry["deprecated"]) == (1, False)

    async with Receiver() as receiver:
        sub = await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            json={"url": receiver.url("/billing"), "event_types": ["invoice.*"]},
        )
        receiver.secrets.append(sub["secret"])

        through_api = (await api.ok("POST", "/v1/events", 202, json=_event(PAID)))["id"]
        assert (await _delivered(receiver, "/billing", through_api))["data"] == PAID

        library_data: dict[str, JsonValue] = {**PAID, "invoice_id": "inv-2", "currency": "USD"}
        publisher = Publisher(settings_, client_id="test-billing")
        try:
            through_library = publisher.publish(
                "invoice.paid", subject=("invoice", "inv-2"), data=library_data
            )
        finally:
            publisher.close()
        assert (await _delivered(receiver, "/billing", through_library))["data"] == library_data

        bad = await api.call("POST", "/v1/events", json=_event({**PAID, "amount_cents": "many"}))
        assert bad.status == 422
        assert [e["field"] for e in (await bad.json())["errors"]] == ["data.amount_cents"]

        v2 = await api.ok(
            "POST", "/v1/event-types/invoice.paid/versions", 201, json={"schema": _v2()}
        )
        assert [v["version"] for v in v2["versions"]] == [1, 2]
        with_email = {**PAID, "payer_email": "ada@example.com"}
        evolved = (await api.ok("POST", "/v1/events", 202, json=_event(with_email)))["id"]
        assert (await _delivered(receiver, "/billing", evolved))["data"] == with_email


async def test_a_publisher_and_the_outbox_running_before_the_type_use_it(
    api: Api, settings_: Settings, outbox_dsn: str
) -> None:
    """Regression guard for "live everywhere": the publisher's catalog was read before the
    type existed, and its codec validates and writes the outbox rows too."""
    publisher = await asyncio.to_thread(Publisher, settings_, client_id="test-early")
    relay = OutboxRelay(settings_, outbox_dsn, client_id="test-early-relay")
    schema = {**INVOICE_PAID, "name": "PaymentFailed"}
    try:
        async with Receiver() as receiver:
            await api.ok(
                "POST",
                "/v1/event-types",
                201,
                json={"name": "payment.failed", "description": "Failed.", "schema": schema},
            )
            sub = await api.ok(
                "POST",
                "/v1/subscriptions",
                201,
                json={"url": receiver.url("/payments"), "event_types": ["payment.failed"]},
            )
            receiver.secrets.append(sub["secret"])
            published = await asyncio.to_thread(
                publisher.publish, "payment.failed", subject=("invoice", "inv-1"), data=PAID
            )
            assert (await _delivered(receiver, "/payments", published))["data"] == PAID

            later: dict[str, JsonValue] = {**PAID, "invoice_id": "inv-3"}
            event = build_event("payment.failed", subject=("invoice", "inv-3"), data=later)
            with psycopg.connect(outbox_dsn) as conn:
                write_outbox(conn, event, codec=publisher.codec)
            assert await asyncio.to_thread(relay.relay_once) == 1
            assert (await _delivered(receiver, "/payments", event.id))["data"] == later
    finally:
        relay.close()
        publisher.close()


async def test_an_incompatible_version_answers_409_naming_the_field(api: Api) -> None:
    schema = {**INVOICE_PAID, "name": "RefundIssued"}
    await api.ok(
        "POST",
        "/v1/event-types",
        201,
        json={"name": "refund.issued", "description": "A refund.", "schema": schema},
    )
    required = {**schema, "fields": [*schema["fields"], {"name": "reason", "type": "string"}]}
    answer = await api.call(
        "POST", "/v1/event-types/refund.issued/versions", json={"schema": required}
    )
    assert answer.status == 409
    assert answer.content_type == "application/problem+json"
    assert [e["field"] for e in (await answer.json())["errors"]] == ["reason"]
    kept = await api.ok("GET", "/v1/event-types/refund.issued")
    assert kept["version"] == 1


async def test_bad_registrations_are_refused_naming_the_field(api: Api) -> None:
    async def field_of(body: dict[str, Any]) -> list[str]:
        answer = await api.call("POST", "/v1/event-types", json=body)
        assert answer.status == 422, await answer.text()
        return [e["field"] for e in (await answer.json())["errors"]]

    good = {"name": "order.shipped", "description": "d", "schema": {**INVOICE_PAID}}
    assert await field_of({**good, "name": "Order Shipped"}) == ["name"]
    assert await field_of({**good, "name": "webhook.custom"}) == ["name"]
    assert await field_of({**good, "schema": {"type": "record", "name": "X"}}) == ["schema"]
    assert await field_of({**good, "examples": [PAID, {**PAID, "currency": 3}]}) == [
        "examples[1].currency"
    ]


async def test_deprecating_a_type_keeps_it_usable(api: Api) -> None:
    schema = {**INVOICE_PAID, "name": "InvoiceVoided"}
    await api.ok(
        "POST",
        "/v1/event-types",
        201,
        json={"name": "invoice.voided", "description": "Voided.", "schema": schema},
    )
    patched = await api.ok(
        "PATCH", "/v1/event-types/invoice.voided", json={"deprecated": True, "description": "Old."}
    )
    assert (patched["deprecated"], patched["doc"]) == (True, "Old.")
    await api.ok("POST", "/v1/events", 202, json=_event(PAID, event_type="invoice.voided"))


async def test_the_catalog_survives_a_restart_and_rebuilds_equal(
    api: Api, settings_: Settings
) -> None:
    schema = {**INVOICE_PAID, "name": "InvoiceSent"}
    await api.ok(
        "POST",
        "/v1/event-types",
        201,
        json={"name": "invoice.sent", "description": "Sent.", "schema": schema},
    )
    before = await api.ok("GET", "/v1/event-types/invoice.sent")
    async with TestClient(TestServer(create_app(settings_, CollectorRegistry()))) as client:
        restarted = Api(client, api.admin)
        assert await restarted.ok("GET", "/v1/event-types/invoice.sent") == before
        everything = await restarted.ok("GET", "/v1/event-types")
    assert everything == await api.ok("GET", "/v1/event-types")

    runtime = open_codec(settings_, client_id="test-rebuild", follow_catalog=True)
    try:
        assert runtime.catalog is not None
        live = runtime.catalog.current()
        rows = runtime.catalog.table.snapshot().values()
        assert catalog_of(rows, defaults=load_catalog()) == live
        # every built-in is on the topic now, so the topic alone makes the same catalog
        assert catalog_of(rows, defaults=EventCatalog({})) == live
    finally:
        runtime.close()
