"""What a benchmark leaves behind on the stack it ran on, removed when it ends.

Every bench run writes under a fresh topic prefix. Left in place, a day of runs piles up
hundreds of topics and their partitions on the bench's one broker, which then spends its
CPU on them and reports lower rates for the same code; so each run deletes its prefix's
topics, consumer groups and PostgreSQL schema when it is done."""

from __future__ import annotations

import sys

import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from psycopg import sql

from api.model.db import schema_name
from hookline.runtime.kafka import admin_config
from hookline.runtime.settings import Settings

TIMEOUT_S = 30.0


def drop_prefix(settings: Settings) -> None:
    """Delete the prefix's topics, groups and schema; a failure is printed, never raised,
    so it cannot hide the bench's own result or error."""
    for step in (_delete_topics, _delete_groups, _drop_schema):
        try:
            step(settings)
        except (KafkaException, psycopg.Error) as exc:
            print(f"bench cleanup: {step.__name__.strip('_')}: {exc}", file=sys.stderr)


def _ours(settings: Settings, name: str) -> bool:
    return name.startswith(f"{settings.topic_prefix}.")


def _delete_topics(settings: Settings) -> None:
    admin = AdminClient(admin_config(settings))
    names = [n for n in admin.list_topics(timeout=TIMEOUT_S).topics if _ours(settings, n)]
    if names:
        for future in admin.delete_topics(names, request_timeout=TIMEOUT_S).values():
            future.result(timeout=TIMEOUT_S)


def _delete_groups(settings: Settings) -> None:
    admin = AdminClient(admin_config(settings))
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    groups = [g.group_id for g in listed.valid if _ours(settings, g.group_id)]
    if groups:
        for future in admin.delete_consumer_groups(groups, request_timeout=TIMEOUT_S).values():
            future.result(timeout=TIMEOUT_S)


def _drop_schema(settings: Settings) -> None:
    if settings.database_url is None:
        return
    with psycopg.connect(settings.database_url.value, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema_name(settings))
            )
        )
