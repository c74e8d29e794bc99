"""Unit tests of the API's request definitions and its OpenAPI document: one source for both."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from api.http.app import create_app
from api.http.bodies import build_bodies
from api.http.context import SPECS
from api.http.routes import operations
from api.model.errors import InvalidInput
from core.errors import InvalidField
from hookline.runtime.settings import Secret, Settings
from schemas.catalog import load_catalog

CATALOG = load_catalog()
BODIES = build_bodies(CATALOG.names(), ())


def _document() -> dict[str, Any]:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:9",
        database_url=Secret("postgresql://nowhere/db"),
        admin_token=Secret("x" * 32),
        secret_key=Secret("VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc="),
    )
    app = create_app(settings, CollectorRegistry())  # building never connects
    document: dict[str, Any] = orjson.loads(app[SPECS].of(CATALOG).document)
    return document


def test_every_route_is_documented_with_its_errors() -> None:
    document = _document()
    assert document["openapi"] == "3.1.0"
    ops = operations(BODIES, {})
    for op in ops:
        entry = document["paths"][op.path][op.method.lower()]
        codes = set(entry["responses"])
        assert {str(c) for c in op.answers} <= codes
        if not op.public:
            assert "401" in codes
        else:
            assert entry["security"] == []
        if op.body is not None:
            assert {"400", "413", "422"} <= codes
        if "{" in op.path:
            assert "404" in codes


def test_a_publish_documents_both_429s_and_their_retry_after() -> None:
    document = _document()
    refused = document["paths"]["/v1/events"]["post"]["responses"]["429"]
    assert "`quota-exceeded`" in refused["description"]
    assert "`ingest-overloaded`" in refused["description"]
    assert refused["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
    problem = document["components"]["schemas"]["Problem"]["properties"]
    assert problem["reason"]["enum"] == ["fair_share", "overloaded"]
    assert problem["lag"]["type"] == "integer"


def test_the_document_uses_the_catalog_and_field_rules() -> None:
    schemas = _document()["components"]["schemas"]
    create = schemas["SubscriptionCreate"]
    assert create["required"] == ["url", "event_types"]
    assert create["additionalProperties"] is False
    assert create["properties"]["url"]["maxLength"] == 2048
    enum = create["properties"]["event_types"]["items"]["enum"]
    assert {"*", "task.*", "task.created"} <= set(enum)
    variants = schemas["EventPublish"]["oneOf"]
    assert {v["properties"]["type"]["const"] for v in variants} == set(CATALOG.names())


def test_parsing_names_every_bad_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        BODIES.create_subscription.parse(
            {"url": "gopher://x", "event_types": ["nope"], "rate_limit": -1, "odd": 1}
        )
    assert {e.field for e in caught.value.errors} == {"url", "event_types[0]", "rate_limit", "odd"}
    parsed = BODIES.update_subscription.parse({"ordered": True})
    assert parsed.get(BODIES.sub.ordered) is True
    assert BODIES.sub.url not in parsed


def test_every_path_value_is_declared_so_it_is_parsed_before_its_handler() -> None:
    document = _document()
    for op in operations(BODIES, {}):
        entry = document["paths"][op.path][op.method.lower()]
        in_path = [p["name"] for p in entry.get("parameters", []) if p["in"] == "path"]
        assert in_path == [p.placeholder for p in op.path_params]
        if in_path:
            assert "422" in entry["responses"]
    read = next(op for op in operations(BODIES, {}) if op.operation_id == "getDelivery")
    with pytest.raises(ValueError, match="placeholders"):
        dataclasses.replace(read, path_params=())


def test_a_path_value_no_store_can_hold_is_refused_naming_what_it_identifies() -> None:
    with pytest.raises(InvalidField) as caught:
        BODIES.path.delivery_id.read({"id": "x\x00"})
    assert caught.value.field == "delivery_id"
    assert BODIES.path.subscription_id.read({"id": "s-1"}) == "s-1"
