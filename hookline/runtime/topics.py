"""The design's topics and their policies; `hookline topics ensure` creates or checks them.

Idempotent: a missing topic is created with its policy, an existing one is checked, and one
whose cleanup policy contradicts the design fails with a line naming it (never auto-fixed:
switching compaction on a live topic can delete data).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec

from core.retry import TIERS
from hookline.runtime.errors import TopicError
from hookline.runtime.kafka import admin_config, check_login
from hookline.runtime.settings import DAY_MS, Settings

RETRY_TIERS: Final = TIERS
"""One topic per tier of the retry schedule (core.retry), never a second list to keep in step."""
DEAD_LETTER_RETENTION_MS: Final = 180 * DAY_MS


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    compact: bool
    config: dict[str, str]

    @property
    def cleanup_policy(self) -> str:
        return "compact" if self.compact else "delete"


def topic_specs(settings: Settings) -> tuple[TopicSpec, ...]:
    def spec(suffix: str, *, compact: bool = False, retention_ms: int | None = None) -> TopicSpec:
        config = {} if retention_ms is None else {"retention.ms": str(retention_ms)}
        base = {
            "cleanup.policy": "compact" if compact else "delete",
            "min.insync.replicas": str(settings.min_insync_replicas),
        }
        return TopicSpec(settings.topic(suffix), compact, base | config)

    return (
        spec("events", retention_ms=settings.events_retention_ms),
        spec("subscriptions", compact=True),
        spec("schemas", compact=True),
        spec("deliveries", retention_ms=7 * DAY_MS),
        # the deliverer's per-subscription backlog (deliverer/backlog.py): partitioned like
        # `deliveries`; segments roll hourly so delivered entries are compacted away
        TopicSpec(
            settings.topic("deliverer-backlog"),
            True,
            {
                "cleanup.policy": "compact",
                "min.insync.replicas": str(settings.min_insync_replicas),
                "segment.ms": str(3_600_000),
                "min.cleanable.dirty.ratio": "0.2",
                "delete.retention.ms": str(DAY_MS),
            },
        ),
        *(spec(f"retry.{tier}", retention_ms=7 * DAY_MS) for tier in RETRY_TIERS),
        spec("attempts", retention_ms=30 * DAY_MS),
        spec("dead-letters", retention_ms=DEAD_LETTER_RETENTION_MS),
        spec("control", compact=True),
        # API tokens by id (api/model/tokens.py): hash, tenant, scopes, expiry, revocation
        spec("tokens", compact=True),
        # event types by name, each record holding every version (runtime/event_types.py)
        spec("event-types", compact=True),
    )


@dataclass(frozen=True, slots=True)
class EnsureReport:
    created: tuple[str, ...]
    existing: tuple[str, ...]


def ensure_topics(
    settings: Settings, *, specs: Sequence[TopicSpec] | None = None, timeout_s: float = 30.0
) -> EnsureReport:
    """Create the missing topics and check the existing ones' cleanup policy."""
    wanted = list(specs if specs is not None else topic_specs(settings))
    check_login(settings)
    admin = AdminClient(admin_config(settings))
    try:
        present = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise TopicError("*", f"cannot list topics: {exc.args[0]}") from exc
    missing = [s for s in wanted if s.name not in present]
    created = _create(admin, settings, missing, timeout_s)
    existing = [s for s in wanted if s.name in present or s.name not in created]
    # checking the created ones too waits until every topic is visible to clients
    _check_policies(admin, wanted, timeout_s)
    _wait_for_leaders(admin, created, timeout_s)
    return EnsureReport(tuple(created), tuple(s.name for s in existing))


def _create(
    admin: AdminClient, settings: Settings, missing: Sequence[TopicSpec], timeout_s: float
) -> list[str]:
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                config=s.config,
            )
            for s in missing
        ],
        request_timeout=timeout_s,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == error.TOPIC_ALREADY_EXISTS:  # raced with another ensure
                continue
            raise TopicError(name, f"cannot create: {error.str()}") from exc
    return created


def _check_policies(admin: AdminClient, specs: Sequence[TopicSpec], timeout_s: float) -> None:
    for spec in specs:
        policy = _cleanup_policy(admin, spec.name, timeout_s)
        if set(policy.split(",")) != {spec.cleanup_policy}:
            raise TopicError(
                spec.name,
                f"has cleanup.policy={policy}, the design needs {spec.cleanup_policy}",
            )


def _cleanup_policy(admin: AdminClient, name: str, timeout_s: float) -> str:
    """The topic's cleanup.policy, waiting out metadata propagation of a just-created topic."""
    deadline = time.monotonic() + timeout_s
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    while True:
        future = admin.describe_configs([resource], request_timeout=timeout_s)[resource]
        try:
            policy: str = future.result()["cleanup.policy"].value
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == error.UNKNOWN_TOPIC_OR_PART and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise TopicError(name, f"cannot describe: {error.str()}") from exc
        return policy


def _wait_for_leaders(admin: AdminClient, names: Sequence[str], timeout_s: float) -> None:
    """Return once every partition of `names` has a leader, so clients can use them at once."""
    deadline = time.monotonic() + timeout_s
    waiting = set(names)
    while waiting:
        metadata = admin.list_topics(timeout=timeout_s)
        for name in list(waiting):
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None or not topic.partitions:
                continue
            if all(p.leader >= 0 and p.error is None for p in topic.partitions.values()):
                waiting.discard(name)
        if waiting and time.monotonic() > deadline:
            raise TopicError(sorted(waiting)[0], "created, but no partition leader in time")
        if waiting:
            time.sleep(0.05)
    # a leader in the metadata may not serve yet: wait until every partition answers ListOffsets
    partitions = [
        TopicPartition(name, p)
        for name in names
        for p in admin.list_topics(name, timeout=timeout_s).topics[name].partitions
    ]
    while partitions:
        futures = admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in partitions},
            request_timeout=timeout_s,
        )
        failed = []
        for tp, future in futures.items():
            try:
                future.result()
            except KafkaException:
                failed.append(tp)
        partitions = failed
        if partitions and time.monotonic() > deadline:
            raise TopicError(partitions[0].topic, "created, but its partitions do not serve")
        if partitions:
            time.sleep(0.05)
