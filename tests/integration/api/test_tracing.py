"""One trace across the pipeline: the API, the router and the deliverer run against the real
Kafka, export their spans over OTLP/HTTP to a collector served by this test, and the receiver
sees the attempt's `traceparent`."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from api.http.app import create_app
from hookline.app.receiver import Receiver
from hookline.runtime.settings import Settings
from hookline.runtime.supervisor import Service
from hookline.runtime.topics import ensure_topics
from hookline.runtime.tracing import configure_tracing
from tests.conftest import Services
from tests.integration.api.conftest import Api, drop_schema, make_settings, running
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration

router_service = pytest.importorskip("router.service")
deliverer_service = pytest.importorskip("deliverer.service")

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


@dataclass(frozen=True, slots=True)
class Exported:
    """One span as the collector received it, ids in hex."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str


class Collector:
    """A tiny OTLP/HTTP collector: accepts protobuf exports on /v1/traces and keeps the spans."""

    def __init__(self) -> None:
        self.spans: list[Exported] = []
        self.endpoint = ""

    async def traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(
                    Exported(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex())
                    for s in scope_spans.spans
                )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def named(self, prefix: str) -> Exported | None:
        return next((s for s in self.spans if s.name.startswith(prefix)), None)


@pytest_asyncio.fixture(loop_scope="session")
async def collector() -> AsyncIterator[Collector]:
    collector = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", collector.traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    collector.endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield collector
    await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="session")
async def provider(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TracerProvider]:
    """The SDK installed as a process would at start-up, told where to export by the standard
    variables; a short batch delay so spans leave while the test polls."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    provider = configure_tracing("hookline-test")
    assert provider is not None
    yield provider
    await asyncio.to_thread(provider.shutdown)  # the collector answers on this loop


@pytest.fixture
def trace_settings(services: Services) -> Iterator[Settings]:
    settings = make_settings(
        services, allowed_target_networks=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    ensure_topics(settings)
    yield settings
    drop_schema(settings)


@pytest.fixture
def pipeline(trace_settings: Settings, provider: TracerProvider) -> Iterator[None]:
    """The router and the deliverer, started after the SDK is installed."""
    registry = CollectorRegistry()
    services: list[Service] = [
        router_service.Router(trace_settings, registry),
        deliverer_service.Deliverer(trace_settings, registry),
    ]
    with running(services):
        yield


@pytest_asyncio.fixture(loop_scope="session")
async def trace_api(trace_settings: Settings, pipeline: None) -> AsyncIterator[Api]:
    app = create_app(trace_settings, CollectorRegistry())
    async with TestClient(TestServer(app)) as client:
        assert trace_settings.admin_token is not None
        yield Api(client, trace_settings.admin_token.value)


async def test_publish_route_and_attempt_are_one_trace(
    trace_api: Api, collector: Collector
) -> None:
    api = trace_api
    async with Receiver() as receiver:
        sub = await api.ok(
            "POST",
            "/v1/subscriptions",
            201,
            json={"url": receiver.url("/traced"), "event_types": ["task.*"]},
        )
        receiver.secrets.append(sub["secret"])
        published = await api.ok(
            "POST",
            "/v1/events",
            202,
            json={
                "type": "task.created",
                "subject": {"type": "task", "id": "t-1"},
                "data": {"id": "t-1", "title": "Traced", "project_id": "p-1"},
                "trace": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
                "tracestate": "vendor=1",
            },
        )
        (request,) = await eventually_async(
            lambda: receiver.on("/traced") or None, "the webhook arrives", timeout_s=40
        )
        assert request.webhook_id == published["id"]

        def spans() -> tuple[Exported, Exported, Exported] | None:
            found = [collector.named(name) for name in ("publish", "route", "deliver")]
            publish, route, deliver = found
            if publish is None or route is None or deliver is None:
                return None
            return publish, route, deliver

        publish, route, deliver = await eventually_async(
            spans, "publish, route and deliver exported", timeout_s=20
        )

    assert {publish.trace_id, route.trace_id, deliver.trace_id} == {CALLER_TRACE}
    assert publish.parent_span_id == CALLER_SPAN
    assert route.parent_span_id == publish.span_id
    assert deliver.parent_span_id == route.span_id
    assert request.headers["traceparent"] == f"00-{CALLER_TRACE}-{deliver.span_id}-01"
    assert request.headers["tracestate"] == "vendor=1"
