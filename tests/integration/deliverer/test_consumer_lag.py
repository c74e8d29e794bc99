"""A running deliverer keeps `hookline_consumer_lag` of its `deliveries` group current from
its consumer's statistics: once it read the command sent, its lag there is 0."""

from __future__ import annotations

import pytest

from hookline.app.receiver import Receiver
from tests.integration.deliverer.conftest import Kit, running
from tests.waiting import eventually_async

pytestmark = pytest.mark.integration


async def test_a_running_deliverer_reports_its_groups_lag(kit: Kit) -> None:
    labels = {
        "group": kit.settings.group("deliverer"),
        "topic": kit.settings.topic("deliveries"),
    }
    async with Receiver() as receiver:
        kit.send([kit.command(kit.subscription(receiver.url("/hook")))])
        async with running(kit.settings) as deliverer:
            # absent until the consumer read a record and reported statistics (every 5 s)
            await eventually_async(
                lambda: deliverer.registry.get_sample_value("hookline_consumer_lag", labels) == 0,
                "the deliveries lag of 0 on the deliverer's registry",
                timeout_s=30,
            )
