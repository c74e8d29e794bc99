"""Maps the `core.records` dataclasses to and from Avro single-object encoded bytes.

`RecordCodec` is what services use: `encode_*` / `decode_*` per record type. An event's
`data` is validated against its type's schema and encoded on its own (the envelope carries
it as bytes), so each event type evolves independently of the envelope. Decode errors are
`UndecodableRecord`; the consumer adds the record's coordinates. Subscription tombstones
(a None value) are the caller's to handle.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, cast, get_args

import orjson

from core.errors import InvalidField
from core.event_types import EventTypeRecord, EventTypeVersion
from core.filters import Filter, FilterValue, legacy_fields, legacy_filter, parse_filter
from core.json_value import JsonValue
from core.records import (
    ApiToken,
    ContentType,
    DeadLetter,
    DeliveryAttempt,
    DeliveryCommand,
    DomainEvent,
    Job,
    Ref,
    StoredSecret,
    Subscription,
    Timings,
    TokenScope,
    utc_ms,
)
from schemas import event_data
from schemas.catalog import CatalogSource, EventCatalog, RecordSchemas
from schemas.codec import AvroRecord, AvroSchema, WriterLookup, decode, encode, read_fingerprint
from schemas.errors import (
    InvalidEventData,
    UndecodableRecord,
    UnknownEventType,
    UnknownWriterSchema,
)

_SUBSCRIPTION_STATUSES = frozenset({"active", "paused", "disabled"})
_ORIGINS = frozenset({"route", "replay", "recover", "redeliver", "test"})
_ATTEMPT_ORIGINS = _ORIGINS | {"retry"}
_CONTENT_TYPES: frozenset[ContentType] = frozenset(get_args(ContentType))
_OUTCOMES = frozenset({"delivered", "retrying", "dead", "failed"})
_JOB_KINDS = frozenset({"replay", "recover", "redeliver"})
_JOB_STATUSES = frozenset({"running", "done", "failed", "cancelled"})
_SCOPES: tuple[TokenScope, ...] = ("read", "write", "publish")


class RecordCodec:
    """Encodes and decodes every record type hookline puts on Kafka.

    `writer_lookup` resolves writer schemas by fingerprint (a `SchemaRegistry.lookup`); the
    composition root publishes `writer_schemas()` to the registry before first use (a
    version registered later was published by whoever registered it). `catalog` is asked
    for the catalog as of now at each use, so a live one is followed without a restart.
    """

    def __init__(
        self, *, records: RecordSchemas, catalog: CatalogSource, writer_lookup: WriterLookup
    ) -> None:
        self.records = records
        self._catalog = catalog
        self._lookup = writer_lookup

    @property
    def catalog(self) -> EventCatalog:
        return self._catalog.current()

    def writer_schemas(self) -> tuple[AvroSchema, ...]:
        """Every schema this codec writes with: the records and each event type's data."""
        return self.records.all() + tuple(e.schema for e in self.catalog.entries())

    def _decode(self, value: bytes, reader: AvroSchema) -> AvroRecord:
        return decode(value, writer_lookup=self._lookup, reader=reader)

    # -- events ---------------------------------------------------------------------------

    def schema_of(self, event_type: str) -> AvroSchema:
        """The latest schema of the type's data; a type not known yet is looked for once
        more after the catalog caught up (it may have been registered a moment ago)."""
        found = self.catalog.get(event_type)
        if found is None:
            found = self._catalog.refresh().get(event_type)
        if found is None:
            raise UnknownEventType(event_type)
        return found

    def validate_data(self, event_type: str, data: Mapping[str, object]) -> AvroRecord:
        """`data` normalized for its type's latest schema; `InvalidEventData` names the
        bad field."""
        schema = self.schema_of(event_type)
        return event_data.validate(schema, data, event_type=event_type)

    def encode_data(self, event_type: str, data: Mapping[str, object]) -> bytes:
        """The validated `data` in single-object encoding with the type's latest schema."""
        schema = self.schema_of(event_type)
        return encode(schema, event_data.validate(schema, data, event_type=event_type))

    def decode_data(self, value: bytes) -> dict[str, JsonValue]:
        """An event's `data` bytes as JSON, read with the writer's own schema: subscribers
        get the data as it was published, whichever versions of the type this process knows
        (a router a moment behind a new version must not drop its new fields)."""
        fingerprint = read_fingerprint(value)
        writer = self.catalog.writer(fingerprint) or self._lookup(fingerprint)
        if writer is None:
            raise UnknownWriterSchema(fingerprint)
        return _json_object(event_data.to_json(self._decode(value, writer)), "data")

    def encode_event(self, event: DomainEvent) -> bytes:
        """Validate and encode; `UnknownEventType` or `InvalidEventData` when it does not fit."""
        data = self.encode_data(event.type, event.data)
        try:
            event_id = str(uuid.UUID(event.id))
        except ValueError:
            raise InvalidEventData(event.type, "id", "not a UUID") from None
        try:
            occurred_at = utc_ms(event.occurred_at)
        except ValueError as exc:
            raise InvalidEventData(event.type, "occurred_at", str(exc)) from None
        record = {
            "id": event_id,
            "type": event.type,
            "tenant": event.tenant,
            "occurred_at": occurred_at,
            "subject": _ref_to_avro(event.subject),
            "actor": None if event.actor is None else _ref_to_avro(event.actor),
            "data": data,
            "changes": None if event.changes is None else orjson.dumps(event.changes).decode(),
            "trace": event.trace,
            "tracestate": event.tracestate,
        }
        return encode(self.records.event, record)

    def decode_event(self, value: bytes) -> DomainEvent:
        rec = self._decode(value, self.records.event)
        changes = None if rec["changes"] is None else _parse_json_object(rec["changes"], "changes")
        return DomainEvent(
            id=str(rec["id"]),
            type=rec["type"],
            tenant=rec["tenant"],
            occurred_at=rec["occurred_at"],
            subject=_ref_from_avro(rec["subject"]),
            actor=None if rec["actor"] is None else _ref_from_avro(rec["actor"]),
            data=self.decode_data(rec["data"]),
            changes=changes,
            trace=rec["trace"],
            tracestate=rec["tracestate"],
        )

    # -- internal records -----------------------------------------------------------------

    def encode_subscription(self, sub: Subscription) -> bytes:
        return encode(self.records.subscription, subscription_to_avro(sub))

    def decode_subscription(self, value: bytes) -> Subscription:
        return subscription_from_avro(self._decode(value, self.records.subscription))

    def encode_delivery_command(self, command: DeliveryCommand) -> bytes:
        return encode(self.records.delivery_command, command_to_avro(command))

    def decode_delivery_command(self, value: bytes) -> DeliveryCommand:
        return command_from_avro(self._decode(value, self.records.delivery_command))

    def encode_delivery_attempt(self, attempt: DeliveryAttempt) -> bytes:
        return encode(self.records.delivery_attempt, attempt_to_avro(attempt))

    def decode_delivery_attempt(self, value: bytes) -> DeliveryAttempt:
        return attempt_from_avro(self._decode(value, self.records.delivery_attempt))

    def encode_dead_letter(self, letter: DeadLetter) -> bytes:
        return encode(self.records.dead_letter, dead_letter_to_avro(letter))

    def decode_dead_letter(self, value: bytes) -> DeadLetter:
        return dead_letter_from_avro(self._decode(value, self.records.dead_letter))

    def encode_job(self, job: Job) -> bytes:
        return encode(self.records.job, job_to_avro(job))

    def decode_job(self, value: bytes) -> Job:
        return job_from_avro(self._decode(value, self.records.job))

    def encode_token(self, token: ApiToken) -> bytes:
        return encode(self.records.token, token_to_avro(token))

    def decode_token(self, value: bytes) -> ApiToken:
        return token_from_avro(self._decode(value, self.records.token))

    def encode_event_type(self, record: EventTypeRecord) -> bytes:
        return encode(self.records.event_type, event_type_to_avro(record))

    def decode_event_type(self, value: bytes) -> EventTypeRecord:
        return event_type_from_avro(self._decode(value, self.records.event_type))


# -- pure mappings, one pair per record ---------------------------------------------------


def subscription_to_avro(sub: Subscription) -> AvroRecord:
    return {
        "id": sub.id,
        "tenant": sub.tenant,
        "url": sub.url,
        "event_types": list(sub.event_types),
        **_filter_to_avro(sub.filter),
        "description": sub.description,
        "headers": dict(sub.headers),
        "sealed_headers": dict(sub.sealed_headers),
        "rate_limit": sub.rate_limit,
        "ordered": sub.ordered,
        "status": sub.status,
        "created_at": sub.created_at,
        "updated_at": sub.updated_at,
        "version": sub.version,
        "secrets": [{"ciphertext": s.ciphertext, "expires_at": s.expires_at} for s in sub.secrets],
        "disabled_reason": sub.disabled_reason,
        "disabled_at": sub.disabled_at,
        "paused_at": sub.paused_at,
        "content_type": sub.content_type,
    }


def subscription_from_avro(rec: AvroRecord) -> Subscription:
    return Subscription(
        id=rec["id"],
        tenant=rec["tenant"],
        url=rec["url"],
        event_types=tuple(rec["event_types"]),
        filter=_filter_from_avro(rec),
        description=rec["description"],
        headers=rec["headers"],
        sealed_headers=rec["sealed_headers"],
        rate_limit=rec["rate_limit"],
        ordered=rec["ordered"],
        status=_choice(rec["status"], _SUBSCRIPTION_STATUSES, "status"),
        created_at=rec["created_at"],
        updated_at=rec["updated_at"],
        version=rec["version"],
        secrets=tuple(StoredSecret(s["ciphertext"], s["expires_at"]) for s in rec["secrets"]),
        disabled_reason=rec["disabled_reason"],
        disabled_at=rec["disabled_at"],
        paused_at=rec["paused_at"],
        content_type=_choice(rec["content_type"], _CONTENT_TYPES, "content_type"),
    )


def _filter_to_avro(value: Filter) -> AvroRecord:
    """A filter the equality map can hold goes there alone, so routers that predate paths
    still read it; any other goes whole into `filter_document`."""
    fields = legacy_fields(value)
    if fields is not None:
        return {"filter": fields, "filter_document": None}
    return {"filter": {}, "filter_document": orjson.dumps(value.document).decode()}


def _filter_from_avro(rec: AvroRecord) -> Filter:
    if rec["filter_document"] is None:
        return legacy_filter(cast(dict[str, FilterValue], rec["filter"]))
    document = _parse_json_object(rec["filter_document"], "filter_document")
    try:
        # checked when it was written: a bound lowered since does not make it unreadable
        return parse_filter(document, limits=None)
    except InvalidField as exc:
        raise UndecodableRecord(f"filter_document: {exc}") from exc


def command_to_avro(command: DeliveryCommand) -> AvroRecord:
    return {
        "delivery_id": command.delivery_id,
        "event_id": command.event_id,
        "event_type": command.event_type,
        "tenant": command.tenant,
        "subscription_id": command.subscription_id,
        "occurred_at": command.occurred_at,
        "payload": command.payload,
        "attempt": command.attempt,
        "created_at": command.created_at,
        "not_before": command.not_before,
        "origin": command.origin,
        "job_id": command.job_id,
        "last_error": command.last_error,
        "trace": command.trace,
        "tracestate": command.tracestate,
        "prior_attempts": command.prior_attempts,
    }


def command_from_avro(rec: AvroRecord) -> DeliveryCommand:
    return DeliveryCommand(
        delivery_id=rec["delivery_id"],
        event_id=rec["event_id"],
        event_type=rec["event_type"],
        tenant=rec["tenant"],
        subscription_id=rec["subscription_id"],
        occurred_at=rec["occurred_at"],
        payload=rec["payload"],
        attempt=rec["attempt"],
        created_at=rec["created_at"],
        not_before=rec["not_before"],
        origin=_choice(rec["origin"], _ORIGINS, "origin"),
        job_id=rec["job_id"],
        last_error=rec["last_error"],
        trace=rec["trace"],
        tracestate=rec["tracestate"],
        prior_attempts=rec["prior_attempts"],
    )


def attempt_to_avro(attempt: DeliveryAttempt) -> AvroRecord:
    return {
        "delivery_id": attempt.delivery_id,
        "event_id": attempt.event_id,
        "event_type": attempt.event_type,
        "subscription_id": attempt.subscription_id,
        "tenant": attempt.tenant,
        "attempt": attempt.attempt,
        "at": attempt.at,
        "status_code": attempt.status_code,
        "duration_ms": attempt.duration_ms,
        "error": attempt.error,
        "response_excerpt": attempt.response_excerpt,
        "outcome": attempt.outcome,
        "next_attempt_at": attempt.next_attempt_at,
        "trace": attempt.trace,
        "tracestate": attempt.tracestate,
        "origin": attempt.origin,
        "request_headers": dict(attempt.request_headers),
        "request_body": attempt.request_body,
        "response_headers": dict(attempt.response_headers),
        "dns_ms": attempt.timings.dns_ms,
        "connect_ms": attempt.timings.connect_ms,
        "ttfb_ms": attempt.timings.ttfb_ms,
    }


def attempt_from_avro(rec: AvroRecord) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=rec["delivery_id"],
        event_id=rec["event_id"],
        event_type=rec["event_type"],
        subscription_id=rec["subscription_id"],
        tenant=rec["tenant"],
        attempt=rec["attempt"],
        at=rec["at"],
        status_code=rec["status_code"],
        duration_ms=rec["duration_ms"],
        error=rec["error"],
        response_excerpt=rec["response_excerpt"],
        outcome=_choice(rec["outcome"], _OUTCOMES, "outcome"),
        next_attempt_at=rec["next_attempt_at"],
        trace=rec["trace"],
        tracestate=rec["tracestate"],
        origin=_optional_choice(rec["origin"], _ATTEMPT_ORIGINS, "origin"),
        request_headers=rec["request_headers"],
        request_body=rec["request_body"],
        response_headers=rec["response_headers"],
        timings=Timings(rec["dns_ms"], rec["connect_ms"], rec["ttfb_ms"]),
    )


def dead_letter_to_avro(letter: DeadLetter) -> AvroRecord:
    return {
        "id": letter.id,
        "reason": letter.reason,
        "at": letter.at,
        "subscription_id": letter.subscription_id,
        "command": None if letter.command is None else command_to_avro(letter.command),
        "source_topic": letter.source_topic,
        "source_partition": letter.source_partition,
        "source_offset": letter.source_offset,
        "raw_value": letter.raw_value,
        "error": letter.error,
    }


def dead_letter_from_avro(rec: AvroRecord) -> DeadLetter:
    return DeadLetter(
        id=rec["id"],
        reason=rec["reason"],
        at=rec["at"],
        subscription_id=rec["subscription_id"],
        command=None if rec["command"] is None else command_from_avro(rec["command"]),
        source_topic=rec["source_topic"],
        source_partition=rec["source_partition"],
        source_offset=rec["source_offset"],
        raw_value=rec["raw_value"],
        error=rec["error"],
    )


def job_to_avro(job: Job) -> AvroRecord:
    return {
        "id": job.id,
        "kind": job.kind,
        "tenant": job.tenant,
        "subscription_id": job.subscription_id,
        "delivery_id": job.delivery_id,
        "since": job.since,
        "until": job.until,
        "event_types": list(job.event_types),
        "status": job.status,
        "scanned": job.scanned,
        "emitted": job.emitted,
        "error": job.error,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    }


def job_from_avro(rec: AvroRecord) -> Job:
    return Job(
        id=rec["id"],
        kind=_choice(rec["kind"], _JOB_KINDS, "kind"),
        tenant=rec["tenant"],
        subscription_id=rec["subscription_id"],
        delivery_id=rec["delivery_id"],
        since=rec["since"],
        until=rec["until"],
        event_types=tuple(rec["event_types"]),
        status=_choice(rec["status"], _JOB_STATUSES, "status"),
        scanned=rec["scanned"],
        emitted=rec["emitted"],
        error=rec["error"],
        created_at=rec["created_at"],
        updated_at=rec["updated_at"],
    )


def token_to_avro(token: ApiToken) -> AvroRecord:
    return {
        "id": token.id,
        "token_hash": token.token_hash,
        "tenant": token.tenant,
        "scopes": list(token.scopes),
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
    }


def token_from_avro(rec: AvroRecord) -> ApiToken:
    """A scope this reader does not know is dropped: a newer writer's token keeps only the
    powers this version can name, never more."""
    return ApiToken(
        id=rec["id"],
        token_hash=rec["token_hash"],
        tenant=rec["tenant"],
        scopes=tuple(s for s in _SCOPES if s in rec["scopes"]),
        created_at=rec["created_at"],
        expires_at=rec["expires_at"],
        revoked_at=rec["revoked_at"],
    )


def event_type_to_avro(record: EventTypeRecord) -> AvroRecord:
    return {
        "name": record.name,
        "description": record.description,
        "versions": [
            {
                "version": v.version,
                "schema": v.schema,
                "description": v.description,
                "examples": orjson.dumps(list(v.examples)).decode(),
                "created_at": v.created_at,
            }
            for v in record.versions
        ],
        "deprecated": record.deprecated,
        "builtin": record.builtin,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "revision": record.revision,
    }


def event_type_from_avro(rec: AvroRecord) -> EventTypeRecord:
    if not rec["versions"]:
        raise UndecodableRecord(f"event type {rec['name']!r}: no versions")
    return EventTypeRecord(
        name=rec["name"],
        description=rec["description"],
        versions=tuple(
            EventTypeVersion(
                version=v["version"],
                schema=v["schema"],
                description=v["description"],
                examples=_examples(v["examples"]),
                created_at=v["created_at"],
            )
            for v in rec["versions"]
        ),
        deprecated=rec["deprecated"],
        builtin=rec["builtin"],
        created_at=rec["created_at"],
        updated_at=rec["updated_at"],
        revision=rec["revision"],
    )


def _examples(text: str) -> tuple[dict[str, JsonValue], ...]:
    try:
        parsed: JsonValue = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UndecodableRecord(f"examples: not JSON: {exc}") from exc
    if not isinstance(parsed, list):
        raise UndecodableRecord("examples: expected a JSON array")
    return tuple(_json_object(item, "examples") for item in parsed)


def _ref_to_avro(ref: Ref) -> AvroRecord:
    return {"type": ref.type, "id": ref.id}


def _ref_from_avro(rec: AvroRecord) -> Ref:
    return Ref(type=rec["type"], id=rec["id"])


def _choice(value: str, allowed: frozenset[str], field: str) -> Any:
    """`value` when it is one of a closed set of names; the caller's Literal type holds it."""
    if value not in allowed:
        raise UndecodableRecord(f"{field}: unknown value {value!r}")
    return value


def _optional_choice(value: str | None, allowed: frozenset[str], field: str) -> Any:
    return None if value is None else _choice(value, allowed, field)


def _parse_json_object(text: str, field: str) -> dict[str, JsonValue]:
    try:
        parsed: JsonValue = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UndecodableRecord(f"{field}: not JSON: {exc}") from exc
    return _json_object(parsed, field)


def _json_object(value: JsonValue, field: str) -> dict[str, JsonValue]:
    if not isinstance(value, dict):
        raise UndecodableRecord(f"{field}: expected a JSON object")
    return value
