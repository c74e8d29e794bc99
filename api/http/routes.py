"""The route table: every operation of the admin API with what it accepts and answers.

The app registers its handlers from this table and the OpenAPI document is generated from
it, so a route cannot exist without being documented.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from api.http import deliveries, event_types, subscriptions, system, tokens
from api.http.bodies import Bodies
from api.http.fields import JsonSchema, PathParam, QueryParam
from api.http.views import (
    ACCEPTED_EVENT,
    DELIVERY,
    DELIVERY_WITH_ATTEMPTS,
    EVENT_TYPE,
    EVENT_TYPE_WITH_VERSIONS,
    HEALTH,
    JOB,
    NEW_TOKEN,
    READY,
    REDELIVERED,
    SECRET,
    SENT,
    SUBSCRIPTION,
    SUBSCRIPTION_WITH_SECRET,
    TOKEN,
    data_of,
    page_of,
)
from core.records import TokenScope

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Every authenticated operation may answer these (403: a scope it lacks, or a tenant token
# on an admin-only route); bodies add 400, 408, 413, 422.
AUTH_ERRORS: Final = (401, 403, 503)
BODY_ERRORS: Final = (400, 408, 413, 422)
_PLACEHOLDER: Final = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Answer:
    """One documented response: its description and JSON schema (None: no body, or not JSON)."""

    description: str
    schema: JsonSchema | None = None
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Operation:
    """One route. `scope` is what a token needs to call it (None only on public routes):
    `read` for every GET but the signing secret's, `publish` to publish events, `write` for
    every other change and for reading a signing secret (it can sign the tenant's webhooks); the
    app refuses a token without it (403) before the handler runs."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    answers: Mapping[int, Answer]
    body: JsonSchema | None = None
    body_name: str | None = None
    body_required: bool = True
    query: tuple[QueryParam[Any], ...] = ()
    path_params: tuple[PathParam[Any], ...] = ()
    public: bool = False
    scope: TokenScope | None = None
    errors: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        """Every placeholder of the path is declared, so every path value is parsed before
        its handler runs and documented; a route is public or names the scope it needs."""
        declared = sorted(p.placeholder for p in self.path_params)
        if sorted(_PLACEHOLDER.findall(self.path)) != declared:
            raise ValueError(f"{self.method} {self.path}: its placeholders are not {declared}")
        if self.public != (self.scope is None):
            raise ValueError(f"{self.operation_id}: a route is public or needs a scope")


def operations(bodies: Bodies, event_body: JsonSchema) -> tuple[Operation, ...]:
    """Every operation, in the order the document lists them."""
    paging = (bodies.limit, bodies.cursor)
    sub_id = "/v1/subscriptions/{id}"
    path = bodies.path
    tokens_path = "/v1/tenants/{tenant}/tokens"
    type_path = "/v1/event-types/{name}"
    return (
        Operation(
            "GET",
            "/healthz",
            system.healthz,
            "healthz",
            "Liveness: 503 names a table whose reader stopped (restart the process)",
            "system",
            {200: Answer("alive", HEALTH)},
            public=True,
            errors=(503,),
        ),
        Operation(
            "GET",
            "/readyz",
            system.readyz,
            "readyz",
            "Readiness: tables caught up, Kafka and PostgreSQL reachable",
            "system",
            {200: Answer("ready", READY), 503: Answer("not ready", READY)},
            public=True,
        ),
        Operation(
            "GET",
            "/metrics",
            system.metrics,
            "metrics",
            "Prometheus metrics",
            "system",
            {200: Answer("metrics", None, "text/plain")},
            public=True,
        ),
        Operation(
            "GET",
            "/openapi.json",
            system.openapi,
            "openapi",
            "This document",
            "system",
            {200: Answer("the OpenAPI 3.1 document", {"type": "object"})},
            public=True,
        ),
        Operation(
            "GET",
            "/v1/event-types",
            event_types.list_all,
            "listEventTypes",
            "The event-type catalog: each type's latest version",
            "event-types",
            {200: Answer("the catalog", data_of(EVENT_TYPE))},
            scope="read",
        ),
        Operation(
            "POST",
            "/v1/event-types",
            event_types.create,
            "createEventType",
            "Register an event type (admin only): version 1 of its `data` schema",
            "event-types",
            {201: Answer("registered", EVENT_TYPE_WITH_VERSIONS)},
            body=bodies.create_event_type.schema(),
            body_name=bodies.create_event_type.name,
            errors=(*BODY_ERRORS, 409),
            scope="write",
        ),
        Operation(
            "GET",
            type_path,
            event_types.read,
            "getEventType",
            "An event type with every version: Avro, JSON Schema and examples",
            "event-types",
            {200: Answer("the type", EVENT_TYPE_WITH_VERSIONS)},
            path_params=(path.event_type,),
            errors=(404,),
            scope="read",
        ),
        Operation(
            "PATCH",
            type_path,
            event_types.update,
            "updateEventType",
            "Change an event type's description or deprecated flag (admin only)",
            "event-types",
            {200: Answer("updated", EVENT_TYPE_WITH_VERSIONS)},
            body=bodies.update_event_type.schema(),
            body_name=bodies.update_event_type.name,
            path_params=(path.event_type,),
            errors=(404, *BODY_ERRORS),
            scope="write",
        ),
        Operation(
            "POST",
            type_path + "/versions",
            event_types.add_version,
            "createEventTypeVersion",
            "Add the next version of an event type's schema (admin only); 409 naming each"
            " field when it cannot read data written with an earlier version",
            "event-types",
            {201: Answer("the type with its new version", EVENT_TYPE_WITH_VERSIONS)},
            body=bodies.new_event_type_version.schema(),
            body_name=bodies.new_event_type_version.name,
            path_params=(path.event_type,),
            errors=(404, 409, *BODY_ERRORS),
            scope="write",
        ),
        Operation(
            "POST",
            "/v1/events",
            system.publish,
            "publishEvent",
            "Publish one event; 202 once Kafka acknowledged it (an id published lately with"
            " the same content: 202 again, no second event; with other content: 409)",
            "events",
            {202: Answer("accepted", ACCEPTED_EVENT)},
            body=event_body,
            body_name="EventPublish",
            errors=(*BODY_ERRORS, 409, 429),
            scope="publish",
        ),
        Operation(
            "POST",
            tokens_path,
            tokens.create,
            "createTenantToken",
            "Create a token for a tenant (admin only); every scope, no expiry unless asked",
            "tenants",
            {201: Answer("the token, shown once", NEW_TOKEN)},
            body=bodies.create_token.schema(),
            body_name=bodies.create_token.name,
            body_required=False,
            path_params=(path.tenant,),
            errors=BODY_ERRORS,
            scope="write",
        ),
        Operation(
            "GET",
            tokens_path,
            tokens.list_all,
            "listTenantTokens",
            "List a tenant's tokens that are not revoked, without the tokens (admin only)",
            "tenants",
            {200: Answer("a page", page_of(TOKEN))},
            query=paging,
            path_params=(path.tenant,),
            errors=(422,),
            scope="read",
        ),
        Operation(
            "DELETE",
            tokens_path + "/{id}",
            tokens.revoke,
            "revokeTenantToken",
            "Revoke a token: every API process refuses it within seconds (admin only)",
            "tenants",
            {204: Answer("revoked")},
            path_params=(path.tenant, path.token_id),
            errors=(404, 422),
            scope="write",
        ),
        Operation(
            "POST",
            "/v1/subscriptions",
            subscriptions.create,
            "createSubscription",
            "Create a subscription",
            "subscriptions",
            {201: Answer("created, with its secret", SUBSCRIPTION_WITH_SECRET)},
            body=bodies.create_subscription.schema(),
            body_name=bodies.create_subscription.name,
            errors=(*BODY_ERRORS, 409),
            scope="write",
        ),
        Operation(
            "GET",
            "/v1/subscriptions",
            subscriptions.list_all,
            "listSubscriptions",
            "List subscriptions",
            "subscriptions",
            {200: Answer("a page", page_of(SUBSCRIPTION))},
            query=paging,
            errors=(422,),
            scope="read",
        ),
        Operation(
            "GET",
            sub_id,
            subscriptions.read,
            "getSubscription",
            "Read a subscription",
            "subscriptions",
            {200: Answer("the subscription", SUBSCRIPTION)},
            path_params=(path.subscription_id,),
            errors=(404,),
            scope="read",
        ),
        Operation(
            "PATCH",
            sub_id,
            subscriptions.update,
            "updateSubscription",
            "Update a subscription",
            "subscriptions",
            {200: Answer("updated", SUBSCRIPTION)},
            body=bodies.update_subscription.schema(),
            body_name=bodies.update_subscription.name,
            path_params=(path.subscription_id,),
            errors=(404, 409, *BODY_ERRORS),
            scope="write",
        ),
        Operation(
            "DELETE",
            sub_id,
            subscriptions.delete,
            "deleteSubscription",
            "Delete a subscription",
            "subscriptions",
            {204: Answer("deleted")},
            path_params=(path.subscription_id,),
            errors=(404,),
            scope="write",
        ),
        Operation(
            "GET",
            sub_id + "/secret",
            subscriptions.read_secret,
            "getSubscriptionSecret",
            "Read the current signing secret (scope write: the secret signs the tenant's webhooks)",
            "subscriptions",
            {200: Answer("the secret", SECRET)},
            path_params=(path.subscription_id,),
            errors=(404,),
            scope="write",
        ),
        Operation(
            "POST",
            sub_id + "/rotate-secret",
            subscriptions.rotate_secret,
            "rotateSecret",
            "Rotate the secret; the replaced one stays valid for 24 h unless the body says",
            "subscriptions",
            {200: Answer("rotated, with the new secret", SUBSCRIPTION_WITH_SECRET)},
            body=bodies.rotate_secret.schema(),
            body_name=bodies.rotate_secret.name,
            body_required=False,
            path_params=(path.subscription_id,),
            errors=(404, *BODY_ERRORS),
            scope="write",
        ),
        Operation(
            "POST",
            sub_id + "/test",
            subscriptions.ping,
            "pingSubscription",
            "Send the subscription a webhook.ping",
            "subscriptions",
            {202: Answer("the ping's delivery", SENT)},
            path_params=(path.subscription_id,),
            errors=(404,),
            scope="write",
        ),
        Operation(
            "POST",
            sub_id + "/replay",
            deliveries.replay,
            "replaySubscription",
            "Deliver history to the subscription; a job",
            "jobs",
            {202: Answer("the job", JOB)},
            body=bodies.replay.schema(),
            body_name=bodies.replay.name,
            path_params=(path.subscription_id,),
            errors=(404, *BODY_ERRORS),
            scope="write",
        ),
        Operation(
            "POST",
            sub_id + "/recover",
            deliveries.recover,
            "recoverSubscription",
            "Redeliver its failed and dead-lettered deliveries; a job",
            "jobs",
            {202: Answer("the job", JOB)},
            body=bodies.recover.schema(),
            body_name=bodies.recover.name,
            path_params=(path.subscription_id,),
            errors=(404, *BODY_ERRORS),
            scope="write",
        ),
        Operation(
            "GET",
            "/v1/jobs",
            deliveries.list_jobs,
            "listJobs",
            "Jobs and their progress, newest first",
            "jobs",
            {200: Answer("a page", page_of(JOB))},
            query=(*paging, *bodies.job_params),
            errors=(422,),
            scope="read",
        ),
        Operation(
            "GET",
            "/v1/jobs/{id}",
            deliveries.read_job,
            "getJob",
            "A job and its progress",
            "jobs",
            {200: Answer("the job", JOB)},
            path_params=(path.job_id,),
            errors=(404,),
            scope="read",
        ),
        Operation(
            "POST",
            "/v1/jobs/{id}/cancel",
            deliveries.cancel_job,
            "cancelJob",
            "Cancel a running job; it stops at its next checkpoint",
            "jobs",
            {202: Answer("the job, cancelled", JOB)},
            path_params=(path.job_id,),
            errors=(404, 409),
            scope="write",
        ),
        Operation(
            "GET",
            "/v1/deliveries",
            deliveries.list_all,
            "listDeliveries",
            "The delivery history, newest first",
            "deliveries",
            {200: Answer("a page", page_of(DELIVERY))},
            query=(*paging, *bodies.delivery_params),
            errors=(422,),
            scope="read",
        ),
        Operation(
            "GET",
            "/v1/deliveries/{id}",
            deliveries.read,
            "getDelivery",
            "One delivery and its attempts",
            "deliveries",
            {200: Answer("the delivery", DELIVERY_WITH_ATTEMPTS)},
            path_params=(path.delivery_id,),
            errors=(404,),
            scope="read",
        ),
        Operation(
            "POST",
            "/v1/deliveries/{id}/redeliver",
            deliveries.redeliver,
            "redeliver",
            "Send it again now (same webhook-id)",
            "deliveries",
            {202: Answer("the delivery sent again", REDELIVERED)},
            path_params=(path.delivery_id,),
            errors=(404,),
            scope="write",
        ),
    )
