"""The API-ingest scenario's events: task.created sent through `POST /v1/events` by concurrent
aiohttp clients, as users without the producer library send them.

`clients` clients share one session and one schedule: in a paced phase event k is due at
start + k / rate (open model; a client that is late sends at once), otherwise each sends its
next event as soon as its last is answered. An event's latency runs from the moment its
client sent the request (kept here by the id the API answers with, to the microsecond; the
event's own occurred_at is the API's moment, in milliseconds). Events the API does not accept
(a 429, say) are counted by status and not expected at the receiver; none is sent again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Final

import aiohttp
import orjson

from bench.e2e_stats import Answers, Latency, Published
from deliverer.service import new_event_loop

ACCEPTED: Final = 202
THROTTLED: Final = 429


@dataclass(frozen=True, slots=True)
class Sent:
    """One request: the event's subscription index, when it left and was answered, and the
    API's answer."""

    sub: int
    sent_s: float
    answered_s: float
    status: str  # the HTTP status, or `error` when no answer came
    event_id: str | None
    retry_after: str | None


def published_of(sent: list[Sent], started_s: float, publish_s: float) -> Published:
    """The accepted events of a phase, in the order they were due, and how the API answered."""
    accepted = [s for s in sent if s.status == str(ACCEPTED) and s.event_id is not None]
    retry_after = Counter(s.retry_after or "absent" for s in sent if s.status == str(THROTTLED))
    return Published(
        ids=[s.event_id for s in accepted if s.event_id is not None],
        subs=[s.sub for s in accepted],
        started_s=started_s,
        publish_s=publish_s,
        sent_s=[s.sent_s for s in accepted],
        answers=Answers(
            dict(Counter(s.status for s in sent)),
            dict(retry_after),
            Latency.of([(s.answered_s - s.sent_s) * 1000 for s in sent if s.status != "error"]),
        ),
    )


class ApiSource:
    """Publishes through the API, round-robin over the subscriptions' tenants (admin token)."""

    def __init__(self, api_url: str, admin_token: str, subscriptions: int, clients: int) -> None:
        self._url = f"{api_url}/v1/events"
        self._headers = {
            "Authorization": f"Bearer {admin_token}",
            "Content-Type": "application/json",
        }
        self._subscriptions = subscriptions
        self._clients = clients
        self._n = 0
        self._loop = new_event_loop()
        self._session = self._loop.run_until_complete(self._open())

    async def _open(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._clients))

    def publish(self, count: int, rate: float | None) -> Published:
        """`count` events, paced at `rate` events/s (open model) or as fast as possible."""
        first, self._n = self._n, self._n + count
        started_s, started = time.time(), time.perf_counter()
        sent = self._loop.run_until_complete(self._send_all(first, count, rate, started))
        return published_of(sent, started_s, time.perf_counter() - started)

    async def _send_all(
        self, first: int, count: int, rate: float | None, started: float
    ) -> list[Sent]:
        due = iter(range(count))
        sent: list[Sent | None] = [None] * count

        async def client() -> None:
            for k in due:
                if rate:
                    ahead_s = started + k / rate - time.perf_counter()
                    if ahead_s > 0:
                        await asyncio.sleep(ahead_s)
                sent[k] = await self._send(first + k)

        await asyncio.gather(*(client() for _ in range(self._clients)))
        return [s for s in sent if s is not None]

    async def _send(self, n: int) -> Sent:
        sub = n % self._subscriptions
        task_id = f"a{n}"
        body = orjson.dumps(
            {
                "type": "task.created",
                "tenant": f"t{sub}",
                "subject": {"type": "task", "id": task_id},
                "data": {"id": task_id, "title": "bench", "project_id": "p1", "assignee_id": None},
            }
        )
        sent_s = time.time()
        try:
            async with self._session.post(self._url, data=body, headers=self._headers) as response:
                answer = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except aiohttp.ClientError:
            return Sent(sub, sent_s, time.time(), "error", None, None)
        answered_s = time.time()
        event_id = orjson.loads(answer)["id"] if status == ACCEPTED else None
        return Sent(sub, sent_s, answered_s, str(status), event_id, retry_after)

    def close(self) -> None:
        self._loop.run_until_complete(self._session.close())
        self._loop.close()
