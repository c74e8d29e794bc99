"""Trace propagation: the context a publisher gives reaches the command, the attempt and the
webhook request (pure rules), and each span is a child of the record's context (runtime)."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import INVALID_SPAN, NoOpTracer, SpanKind
from opentelemetry.util._once import Once

from core.attempts import Observed, Source, plan_attempt
from core.commands import event_body, new_command
from core.errors import InvalidCustomHeader
from core.outcome import Delivered, MarkDelivered
from core.records import DomainEvent, Ref, StoredSecret, TraceContext, trace_of, with_trace
from core.secretbox import SecretBox
from core.signing import generate_secret
from core.webhook import check_custom_headers, webhook_headers
from deliverer.requests import SigningKeys, request_headers
from hookline.runtime.tracing import child_span, context_of, tracer
from tests.factories import subscription

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = TraceContext(f"00-{TRACE_ID}-00f067aa0ba902b7-01", "vendor=1")
BOX = SecretBox(os.urandom(32))
SOURCE = Source("hookline.deliveries", 0, 7)


def event(trace: TraceContext | None) -> DomainEvent:
    plain = DomainEvent(
        id="5d1e6c3a-6f1b-4a57-9d3e-0d8f3b0f4a11",
        type="task.created",
        tenant="acme",
        occurred_at=NOW,
        subject=Ref("task", "t1"),
        data={"id": "t1"},
    )
    return with_trace(plain, trace)


def headers_for(
    trace: TraceContext | None, *, attempt_span: TraceContext | None = None
) -> dict[str, str]:
    e = event(trace)
    sub = dataclasses.replace(
        subscription("s1", "task.created"),
        secrets=(StoredSecret(BOX.seal(generate_secret(), subscription_id="s1"), None),),
    )
    command = new_command(e, sub.id, payload=event_body(e), now=NOW)
    secrets = SigningKeys(BOX).valid(sub, NOW)
    return request_headers(sub, command, body=command.payload, secrets=secrets, trace=attempt_span)


# -- the pure rules: event -> command -> attempt -> headers ---------------------------------


def test_the_event_trace_reaches_the_command_and_the_attempt_record() -> None:
    command = new_command(event(PARENT), "s1", payload=b"{}", now=NOW)
    assert trace_of(command) == PARENT
    seen = Observed(at=NOW, duration_ms=3, status_code=204, response_body=None)
    plan = plan_attempt(command, seen, Delivered(), MarkDelivered(), now=NOW, source=SOURCE)
    assert plan.attempt is not None
    assert (plan.attempt.trace, plan.attempt.tracestate) == (PARENT.traceparent, "vendor=1")


def test_the_webhook_carries_the_command_trace_unless_the_attempt_has_its_own_span() -> None:
    headers = headers_for(PARENT)
    assert (headers["traceparent"], headers["tracestate"]) == (PARENT.traceparent, "vendor=1")
    own = TraceContext(f"00-{TRACE_ID}-1111111111111111-01")
    headers = headers_for(PARENT, attempt_span=own)
    assert headers["traceparent"] == own.traceparent
    assert "tracestate" not in headers


def test_a_webhook_without_a_trace_has_no_trace_headers() -> None:
    assert {"traceparent", "tracestate"}.isdisjoint(headers_for(None))


@pytest.mark.parametrize("name", ["traceparent", "TraceState"])
def test_a_custom_header_may_not_replace_the_trace_context(name: str) -> None:
    with pytest.raises(InvalidCustomHeader):
        check_custom_headers({name: "00-x"})


# -- the runtime: spans are children of the record's context -----------------------------


def test_a_recorded_span_is_a_child_of_the_record_trace_and_carries_its_own_id() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    with child_span(provider.get_tracer("test"), "route", PARENT, kind=SpanKind.CONSUMER) as span:
        carried = context_of(span)
    (finished,) = exported.get_finished_spans()
    assert finished.parent is not None
    assert (format(finished.parent.trace_id, "032x"), format(finished.parent.span_id, "016x")) == (
        TRACE_ID,
        "00f067aa0ba902b7",
    )
    assert carried == TraceContext(f"00-{TRACE_ID}-{finished.context.span_id:016x}-01", "vendor=1")


def test_with_no_sdk_the_record_trace_passes_through_unchanged() -> None:
    with child_span(NoOpTracer(), "route", PARENT, kind=SpanKind.CONSUMER) as span:
        assert context_of(span) == PARENT


@pytest.fixture
def no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tracer provider installed, whatever an earlier test in this process installed (the
    API's tracing test sets one, and OpenTelemetry lets a process set it only once)."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())


@pytest.mark.usefixtures("no_provider")
def test_with_no_provider_the_process_tracer_passes_the_trace_through() -> None:
    """`tracer(...)` is a proxy that records once a provider is installed; none is here."""
    with child_span(tracer("test"), "deliver", PARENT, kind=SpanKind.CLIENT) as span:
        span.set_attribute("http.response.status_code", 204)
        assert context_of(span) == PARENT


@pytest.mark.usefixtures("no_provider")
@pytest.mark.parametrize("kind", ["no-op", "proxy"])
def test_with_no_sdk_no_span_is_made_current(kind: str) -> None:
    """Regression (#19): every delivery attempt paid for attaching and detaching a context
    that nothing records; the no-op path starts nothing and leaves the context alone."""
    no_op = NoOpTracer() if kind == "no-op" else tracer("test")
    with child_span(no_op, "deliver", PARENT, kind=SpanKind.CLIENT):
        assert trace.get_current_span() is INVALID_SPAN


def test_a_sampled_out_span_stays_in_the_trace_and_is_not_made_current() -> None:
    with child_span(
        TracerProvider(sampler=ALWAYS_OFF).get_tracer("test"),
        "route",
        PARENT,
        kind=SpanKind.CONSUMER,
    ) as span:
        assert trace.get_current_span() is INVALID_SPAN
        carried = context_of(span)
    assert carried is not None
    assert carried.traceparent.startswith(f"00-{TRACE_ID}-")
    assert carried.traceparent != PARENT.traceparent  # a span of its own, not recorded


@pytest.mark.parametrize("given", [None, TraceContext("not-a-traceparent", "vendor=1")])
def test_with_no_sdk_a_missing_or_malformed_trace_carries_none(given: TraceContext | None) -> None:
    with child_span(NoOpTracer(), "publish", given, kind=SpanKind.PRODUCER) as span:
        assert context_of(span) is None


def test_a_stored_custom_trace_header_yields_to_the_platforms_context() -> None:
    """A subscription stored before `traceparent` was reserved still delivers: its value is
    dropped, never sent in place of the attempt's context."""
    headers = webhook_headers(
        msg_id="msg_1",
        timestamp_s=1,
        signature="v1,x",
        version="t",
        custom={"Traceparent": "00-" + "f" * 32 + "-" + "e" * 16 + "-01", "X-Keep": "1"},
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )
    assert headers["traceparent"] == "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    assert "Traceparent" not in headers
    assert headers["X-Keep"] == "1"
