"""One command in its lane: send it (or settle it unsent), then write what follows.

The rules are pure (`core.outcome` classifies and decides, `core.attempts` plans the
records); here they are carried out: the request is built and sent within the
subscription's rate limit, the endpoint's health is noted, a Retry-After holds the lane, and
the plan's records go out with the command's backlog records. The lane's slot is released
as soon as the HTTP attempt ends, before Kafka acknowledges anything.
"""

from __future__ import annotations

import asyncio
import random

from opentelemetry.trace import SpanKind

from core.attempts import (
    Observed,
    Plan,
    Source,
    attempt_number,
    plan_attempt,
    plan_unsendable,
)
from core.errors import InvalidCustomHeader, InvalidSecret
from core.lanes import EndpointHealth, RateLimiter, no_success_reason
from core.outcome import Delivered, Retry, TransportError, classify, decide
from core.records import DeliveryCommand, Subscription, TraceContext, epoch_ms, trace_of
from core.retry import RetrySchedule
from core.webhook import encode_body
from deliverer.backlog_keeper import BacklogKeeper
from deliverer.disabling import Disabler
from deliverer.lanes import InFlight, Item, Lane, Slot, Spawn, SubscriptionLookup
from deliverer.metrics import DelivererMetrics
from deliverer.outputs import Outputs
from deliverer.ports import HttpSender
from deliverer.requests import SigningKeys, request_headers
from deliverer.sender import Attempted
from hookline.runtime.clock import Clock
from hookline.runtime.settings import Settings
from hookline.runtime.tracing import child_span, context_of, tracer


class Attempts:
    """Runs commands' attempts; keeps each endpoint's health and each rate limiter."""

    def __init__(
        self,
        settings: Settings,
        *,
        sender: HttpSender,
        lookup: SubscriptionLookup,
        keys: SigningKeys,
        disabler: Disabler,
        keeper: BacklogKeeper,
        outputs: Outputs,
        in_flight: InFlight,
        clock: Clock,
        metrics: DelivererMetrics,
        stop: asyncio.Event,
        spawn: Spawn,
    ) -> None:
        self._settings = settings
        self._sender = sender
        self._lookup = lookup
        self._keys = keys
        self._disabler = disabler
        self._keeper = keeper
        self._outputs = outputs
        self._in_flight = in_flight
        self._clock = clock
        self._metrics = metrics
        self._stop = stop
        self._spawn = spawn
        self._schedule = RetrySchedule(delays_s=settings.retry_delays_s)
        self._tracer = tracer("hookline.deliverer")  # follows a provider installed later
        self._limiters: dict[str, tuple[float, RateLimiter]] = {}
        self._health: dict[str, EndpointHealth] = {}

    async def run(self, lane: Lane, item: Item, slot: Slot) -> None:
        command = item.command
        assert command is not None, "decoded before it enters a lane"
        source = Source(self._outputs.topics.deliveries, item.partition, item.seq)
        subscription = self._lookup(command.subscription_id)
        if subscription is None or subscription.status != "active":
            why = "deleted" if subscription is None else subscription.status
            assert why != "active"
            self._keys.forget(command.subscription_id)
            self._conclude(
                item, plan_unsendable(command, why, now=self._clock.now(), source=source)
            )
            return
        if not await self._wait_for_rate(subscription):
            self._keeper.hand_back(item)  # stopping: never hold an offset for a rate limit
            return
        fresh = item.offsets is not None  # read from Kafka just now, not from the backlog
        if fresh:
            self._metrics.consume_to_request.observe(self._clock.monotonic() - item.queued_at)
        attempted = await self._attempt(subscription, command)
        if fresh:
            self._metrics.request_to_response.observe(attempted.observed.duration_ms / 1000)
        now = self._clock.now()
        classification = classify(attempted.outcome, now=now)
        decision = decide(
            classification,
            attempt=command.attempt + 1,
            schedule=self._schedule,
            rand=random.random(),  # noqa: S311 - jitter, not security
        )
        plan = plan_attempt(
            command, attempted.observed, classification, decision, now=now, source=source
        )
        self._note_health(subscription, delivered=isinstance(classification, Delivered))
        if isinstance(classification, Retry) and classification.retry_after_s:
            self._hold_lane(lane, classification.retry_after_s)
        slot.release()  # the next request of this lane need not wait for Kafka's ack
        self._conclude(item, plan, fresh=fresh)
        if plan.disable_reason is not None:
            await self._disabler.disable(subscription, plan.disable_reason)

    def _conclude(self, item: Item, plan: Plan, *, fresh: bool = False) -> None:
        """Produce the plan's records, then, once Kafka acknowledged them, settle the
        command's backlog entry; its offset, if it still holds one, is finished after that.
        Written together, a crash could keep the entry's tombstone and lose the attempt's
        record: a delivery the history never hears of. In this order a crash between the two
        leaves the entry, and the command is sent again under the same `webhook-id`."""
        outcome = self._outputs.of_plan(plan)
        settled = self._keeper.settle(item, plan.retry)
        finish = self._in_flight.finisher(item.offsets, item.seq)
        responded = self._clock.monotonic()

        def recorded() -> None:
            if fresh:
                self._metrics.response_to_record_ack.observe(self._clock.monotonic() - responded)
            self._outputs.write_then(settled, finish)

        self._outputs.write_then(outcome, recorded)

    def _hold_lane(self, lane: Lane, retry_after_s: float) -> None:
        """The endpoint asked to be left alone (429/503 with Retry-After): its lane starts
        nothing until then, and what it holds waits in the backlog, not in memory."""
        lane.resume_ms = max(
            lane.resume_ms, epoch_ms(self._clock.now()) + int(retry_after_s * 1000)
        )
        while lane.queue:
            self._keeper.hand_back(lane.queue.popleft(), "held")
        self._keeper.schedule_at(lane.subscription_id, lane.resume_ms)

    async def _attempt(self, subscription: Subscription, command: DeliveryCommand) -> Attempted:
        """The HTTP attempt in its span, a child of the command's trace: the receiver gets
        the span's context, so its own work joins the event's trace too."""
        with child_span(
            self._tracer,
            f"deliver {command.event_type}",
            trace_of(command),
            kind=SpanKind.CLIENT,
            attributes={
                "hookline.delivery_id": command.delivery_id,
                "hookline.subscription_id": command.subscription_id,
                "hookline.attempt": attempt_number(command),
            },
        ) as span:
            attempted = await self._send(subscription, command, context_of(span))
            if attempted.observed.status_code is not None:
                span.set_attribute("http.response.status_code", attempted.observed.status_code)
            return attempted

    async def _send(
        self, subscription: Subscription, command: DeliveryCommand, trace: TraceContext | None
    ) -> Attempted:
        now = self._clock.now()
        body = encode_body(command.payload, subscription.content_type)
        try:
            secrets = self._keys.valid(subscription, now)
            headers = request_headers(
                subscription, command, body=body, secrets=secrets, trace=trace
            )
        except (InvalidSecret, InvalidCustomHeader) as exc:
            observed = Observed(at=now, duration_ms=0, status_code=None, response_body=None)
            return Attempted(
                TransportError("protocol", f"cannot build the request: {exc}"), observed
            )
        attempted = await self._sender.post(
            subscription.url,
            headers=headers,
            body=body,
            deadline_s=self._settings.delivery_timeout_s,
        )
        self._metrics.latency.observe(attempted.observed.duration_ms / 1000)
        return attempted

    def _note_health(self, subscription: Subscription, *, delivered: bool) -> None:
        health = self._health.get(subscription.id, EndpointHealth())
        now = self._clock.now()
        health = health.after_success() if delivered else health.after_failure(now)
        self._health[subscription.id] = health
        if health.should_disable(now, window_s=self._settings.disable_after_s):
            del self._health[subscription.id]
            reason = no_success_reason(self._settings.disable_after_s)
            self._spawn(self._disabler.disable(subscription, reason))

    async def _wait_for_rate(self, subscription: Subscription) -> bool:
        rate = subscription.rate_limit
        if rate is None or rate <= 0:
            return not self._stop.is_set()
        known = self._limiters.get(subscription.id)
        if known is None or known[0] != rate:
            known = self._limiters[subscription.id] = (rate, RateLimiter(rate))
        return await self._sleep_unless_stopping(known[1].reserve(self._clock.monotonic()))

    async def _sleep_unless_stopping(self, wait_s: float) -> bool:
        """Sleep `wait_s`; False when the deliverer started stopping meanwhile."""
        if self._stop.is_set():
            return False
        if wait_s <= 0:
            return True
        try:
            await asyncio.wait_for(self._stop.wait(), wait_s)
        except TimeoutError:
            return True
        return False
