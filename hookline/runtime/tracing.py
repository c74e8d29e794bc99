"""Traces: one span per publish, route and delivery attempt, joined into the event's trace.

The records carry the W3C trace context (`core.records.TraceContext`) from the publisher to
the router to the deliverer, and the webhook request hands it to the receiver. Spans are
exported with the OpenTelemetry SDK over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT`
(or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; otherwise the API's no-op tracer stands in:
it records nothing and hands each parent's context through unchanged, so a caller's trace
still reaches the receiver. The SDK reads the standard `OTEL_*` variables itself (endpoint,
headers, protocol details, sampler, `OTEL_SERVICE_NAME`, resource attributes): they are the
one exception to "every setting through `Settings`", since restating a standard that
collectors, operators and the SDK already share would only drift from it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN_CONTEXT, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from core.records import TraceContext

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

ENDPOINT_VARIABLES: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_PROPAGATOR: Final = TraceContextTextMapPropagator()


def configure_tracing(service_name: str) -> TracerProvider | None:
    """Install the SDK's tracer provider exporting over OTLP/HTTP when an endpoint is set;
    None (the no-op tracer stays) when none is. Call once per process, at start-up; the
    caller shuts the provider down on exit so the last spans are sent."""
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return None
    # Imported only here: without an endpoint a process never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def tracer(name: str) -> Tracer:
    """The process's tracer for `name` (a no-op one until `configure_tracing` installs the
    SDK; one taken earlier follows the provider installed later)."""
    return trace.get_tracer(name)


@contextmanager
def child_span(
    tracer: Tracer,
    name: str,
    parent: TraceContext | None,
    *,
    kind: SpanKind,
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[Span]:
    """A span, child of `parent` (a new trace when there is none or it is malformed), ended
    on exit; an exception escaping it marks it failed.

    A span nothing records (no tracer provider installed, or sampled out) is neither ended
    nor made current: with no provider it is the parent's own non-recording span, and every
    delivery attempt would otherwise pay for attaching and detaching a context for it."""
    span = tracer.start_span(name, context=_context(parent), kind=kind, attributes=attributes)
    if not span.is_recording():
        yield span
        return
    with trace.use_span(span, end_on_exit=True):
        yield span


def context_of(span: Span) -> TraceContext | None:
    """The trace context to carry on for work done under `span`: its own when it records,
    its parent's when the tracer is a no-op, None when neither has one."""
    if span.get_span_context() == INVALID_SPAN_CONTEXT:
        return None  # what the propagator would conclude, without a context to inject from
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    traceparent = carrier.get("traceparent")
    if traceparent is None:
        return None
    return TraceContext(traceparent, carrier.get("tracestate") or None)


def current_trace() -> TraceContext | None:
    """The context of the caller's current span (an instrumented application publishing from
    inside its own span), if any."""
    return context_of(trace.get_current_span())


def _context(parent: TraceContext | None) -> Context:
    if parent is None:
        return Context()
    carrier = {"traceparent": parent.traceparent}
    if parent.tracestate:
        carrier["tracestate"] = parent.tracestate
    return _PROPAGATOR.extract(carrier, context=Context())
