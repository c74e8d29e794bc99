"""Subscriptions by id, built from the compacted `hookline.subscriptions` topic.

Every service that needs subscriptions owns one (a `CompactedTable`): at start it reads the
topic to the end offsets taken then before it reports ready, and follows live updates after.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.records import Subscription
from hookline.runtime.settings import Settings
from hookline.runtime.table import ChangeListener, CompactedTable
from schemas.records_avro import RecordCodec


def newest_version(previous: Subscription | None, record: Subscription) -> Subscription:
    """A record of an older version than the row's is ignored (a writer that lost a race)."""
    if previous is not None and record.version < previous.version:
        return previous
    return record


def holds_version(row: Subscription | None, version: int | None) -> bool:
    """Whether a subscription's row is `version` or newer; a `version` of None asks that the
    subscription is gone. What a writer waits for before it answers (`wait_for`, the API's
    read-back)."""
    if version is None:
        return row is None
    return row is not None and row.version >= version


class SubscriptionTable(CompactedTable[Subscription]):
    def __init__(
        self,
        settings: Settings,
        codec: RecordCodec,
        *,
        client_id: str,
        on_change: ChangeListener[Subscription] | None = None,
    ) -> None:
        super().__init__(
            settings,
            settings.topic("subscriptions"),
            client_id=client_id,
            decode=codec.decode_subscription,
            latest=newest_version,
            on_change=on_change,
        )

    def wait_for(self, subscription_id: str, *, version: int | None, timeout_s: float) -> bool:
        """Wait until the table holds `version` (or newer) of a subscription; None = deleted."""

        def holds(rows: Mapping[str, Subscription]) -> bool:
            return holds_version(rows.get(subscription_id), version)

        return self.wait_until(holds, timeout_s=timeout_s)
