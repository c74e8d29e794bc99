"""`hookline demo`: the platform, a local receiver, and the seed's story told as events.

It brings everything up, subscribes three endpoints of a receiver that verifies every
signature, publishes the story over the API, shows deliveries and retries as they land, and
ends with a summary, deletes its subscriptions (their receiver goes away with the demo) and
prints the commands to explore the history once `hookline up` runs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from hookline.app.localstack.process import port_is_free
from hookline.app.receiver import Answer, Behaviour, FailThenAnswer, Receiver
from hookline.app.up import Platform
from hookline.runtime.settings import Settings

STORY_TIMEOUT_S: Final = 90.0
DEMO_RETRY_DELAYS_S: Final = (1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    title: str
    event_types: tuple[str, ...]
    filter: dict[str, str]
    expected: int


ENDPOINTS: Final = (
    Endpoint("/all-tasks", "all task events", ("task.*",), {}, 5),
    Endpoint(
        "/assignments", "task.assigned only (fails twice, then recovers)", ("task.assigned",), {}, 2
    ),
    Endpoint(
        "/reviews",
        "meeting.ended where title = Sprint review",
        ("meeting.ended",),
        {"title": "Sprint review"},
        1,
    ),
)


def _story() -> list[dict[str, Any]]:
    def event(kind: str, subject: str, data: dict[str, Any], actor: str = "ada") -> dict[str, Any]:
        return {
            "type": kind,
            "subject": {"type": kind.split(".", maxsplit=1)[0], "id": subject},
            "actor": {"type": "user", "id": actor},
            "data": data,
        }

    return [
        event(
            "task.created",
            "t-1",
            {
                "id": "t-1",
                "title": "Draft the launch post",
                "project_id": "launch",
                "assignee_id": None,
            },
        ),
        event(
            "task.created",
            "t-2",
            {
                "id": "t-2",
                "title": "Record the demo video",
                "project_id": "launch",
                "assignee_id": "grace",
            },
        ),
        event(
            "task.created",
            "t-3",
            {"id": "t-3", "title": "Fix the flaky test", "project_id": "core", "assignee_id": None},
        ),
        event(
            "task.assigned",
            "t-1",
            {
                "id": "t-1",
                "title": "Draft the launch post",
                "assignee_id": "linus",
                "previous_assignee_id": None,
            },
        ),
        event(
            "task.assigned",
            "t-3",
            {
                "id": "t-3",
                "title": "Fix the flaky test",
                "assignee_id": "grace",
                "previous_assignee_id": None,
            },
        ),
        event(
            "meeting.ended",
            "m-1",
            {
                "id": "m-1",
                "title": "Sprint review",
                "ended_at": "2026-11-29T10:30:00Z",
                "attendee_ids": ["ada", "grace", "linus"],
            },
        ),
        event(
            "meeting.ended",
            "m-2",
            {
                "id": "m-2",
                "title": "Coffee chat",
                "ended_at": "2026-11-29T11:00:00Z",
                "attendee_ids": ["ada", "linus"],
            },
        ),
    ]


def demo_settings(settings: Settings) -> Settings:
    """The demo's own receiver is on 127.0.0.1, so it lifts the SSRF guard for loopback only,
    and it shortens the retry schedule so the story's retries land in seconds. Its API takes
    any free port when the configured one is taken (the port it got is printed)."""
    port = settings.api_port if port_is_free(settings.api_port, settings.api_host) else 0
    return settings.with_changes(
        api_port=port,
        allowed_target_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        retry_delays_s=DEMO_RETRY_DELAYS_S,
    )


class Screen:
    """A live table on a terminal; plain progress lines when output is not a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self._drawn = 0
        self._last = ""

    def show(self, lines: list[str], *, changed: bool) -> None:
        text = "\n".join(lines)
        if self.tty:
            if self._drawn:
                sys.stdout.write(f"\x1b[{self._drawn}F\x1b[J")
            sys.stdout.write(text + "\n")
            self._drawn = len(lines)
        elif changed:
            sys.stdout.write(lines[-1] + "\n")
        self._last = text
        sys.stdout.flush()

    def finish(self) -> None:
        """Off a terminal only progress lines were printed: print the final table once."""
        if not self.tty and self._last:
            sys.stdout.write(self._last + "\n")
            sys.stdout.flush()


@dataclass(frozen=True, slots=True)
class Afterwards:
    """What the closing commands need: where `hookline up` will serve the API (and whether
    that port is taken now), and the file the admin token is kept in (None when the
    environment gave it)."""

    up_url: str
    port_taken: bool
    credentials: Path | None


async def run_story(platform: Platform, after: Afterwards) -> bool:
    """The story on `platform`; True when every delivery arrived verified."""
    settings = platform.settings
    token = settings.admin_token.value if settings.admin_token else ""
    auth = {"Authorization": f"Bearer {token}"}
    behaviours: dict[str, Behaviour] = {e.path: Answer() for e in ENDPOINTS}
    behaviours["/assignments"] = FailThenAnswer(failures=2, status=503)
    async with (
        Receiver(behaviours=behaviours) as receiver,
        aiohttp.ClientSession(base_url=platform.api_url, headers=auth) as api,
    ):
        print(f"receiver  {receiver.url('/')}  (verifies every signature)")
        ids: dict[str, str] = {}
        try:
            ok = await _tell(receiver, api, ids)
        finally:
            await _unsubscribe(api, ids)
    _explore(ids, token, after)
    return ok


async def _tell(receiver: Receiver, api: aiohttp.ClientSession, ids: dict[str, str]) -> bool:
    """Subscribe (filling `ids`), publish the story and watch it land."""
    for endpoint in ENDPOINTS:
        body = {
            "url": receiver.url(endpoint.path),
            "event_types": list(endpoint.event_types),
            "filter": endpoint.filter,
            "description": f"demo: {endpoint.title}",
        }
        async with api.post("/v1/subscriptions", json=body) as response:
            created = await response.json()
            if response.status != 201:
                print(f"could not subscribe {endpoint.path}: {created}", file=sys.stderr)
                return False
        ids[endpoint.path] = created["id"]
        receiver.secrets.append(created["secret"])
        print(f"subscribed {endpoint.path:<13} {endpoint.title}")
    print()
    for event in _story():
        async with api.post("/v1/events", json=event) as response:
            if response.status != 202:
                print(f"publish failed: {await response.text()}", file=sys.stderr)
                return False
        data = event["data"]
        assigned = event["type"] == "task.assigned"
        detail = f"{data['title']} -> {data['assignee_id']}" if assigned else data["title"]
        print(f"published  {event['type']:<14} {event['subject']['id']}  {detail}")
    print()
    return await _watch(receiver, api, ids)


async def _watch(receiver: Receiver, api: aiohttp.ClientSession, ids: dict[str, str]) -> bool:
    screen = Screen()
    started = time.monotonic()
    done = False
    previous: list[str] = []
    while time.monotonic() - started < STORY_TIMEOUT_S:
        rows, done = _table(receiver)
        elapsed = time.monotonic() - started
        delivered = sum(len(_succeeded(receiver, e.path)) for e in ENDPOINTS)
        expected = sum(e.expected for e in ENDPOINTS)
        changed = rows != previous
        previous = list(rows)
        rows.append(f"  {delivered}/{expected} delivered after {elapsed:4.1f} s")
        screen.show(rows, changed=changed)
        if done:
            break
        await asyncio.sleep(0.25)
    screen.finish()
    history = await _history(api, ids)
    print()
    print("history (from the API, PostgreSQL read model):")
    for line in history:
        print(f"  {line}")
    verified = all(r.verified for r in receiver.received)
    print()
    if done and verified:
        print("every delivery arrived and every signature verified.")
    else:
        print("the story did not complete: see the table above.", file=sys.stderr)
    return done and verified


async def _unsubscribe(api: aiohttp.ClientSession, ids: dict[str, str]) -> None:
    """Delete the demo's subscriptions: their receiver stops with the demo, and a later
    `hookline up` would otherwise retry every new event to it for more than a day."""
    kept: list[str] = []
    for sub_id in ids.values():
        try:
            async with api.delete(f"/v1/subscriptions/{sub_id}") as response:
                if response.status not in (204, 404):
                    kept.append(f"{sub_id} (HTTP {response.status})")
        except (aiohttp.ClientError, TimeoutError) as exc:
            kept.append(f"{sub_id} ({exc})")
    if kept:
        print(f"could not delete the demo's subscriptions: {', '.join(kept)}", file=sys.stderr)
    elif ids:
        print()
        print(f"deleted the demo's {len(ids)} subscriptions (their receiver stops with the demo);")
        print("their deliveries stay in the history.")


def _explore(ids: dict[str, str], token: str, after: Afterwards) -> None:
    """The commands to look at the story's history once `hookline up` runs."""
    if not ids:
        return
    sub = next(iter(ids.values()))
    url = after.up_url
    auth = '-H "Authorization: Bearer $TOKEN"'
    print()
    print("to explore it yourself, start the platform with `hookline up` (or `make up`); then,")
    print("in another shell:")
    if after.port_taken:
        port = url.rsplit(":", 1)[-1]
        print(f"  (port {port} is taken here: `hookline up --api-port PORT`, and that port below)")
    kept = f"   # kept in {after.credentials}" if after.credentials is not None else ""
    print(f"  export TOKEN={token}{kept}")
    print(f"  curl -s {auth} '{url}/v1/deliveries?subscription_id={sub}'")
    print(f"  curl -s {auth} {url}/v1/event-types")
    print(f"  curl -s {url}/openapi.json")


def _table(receiver: Receiver) -> tuple[list[str], bool]:
    rows = [f"  {'endpoint':<14}{'delivered':>10}{'requests':>10}{'retries':>9}{'verified':>10}"]
    done = True
    for endpoint in ENDPOINTS:
        got = receiver.on(endpoint.path)
        ok_ids = _succeeded(receiver, endpoint.path)
        retries = len(got) - len({r.webhook_id for r in got})
        verified = sum(1 for r in got if r.verified)
        rows.append(
            f"  {endpoint.path:<14}{f'{len(ok_ids)}/{endpoint.expected}':>10}"
            f"{len(got):>10}{retries:>9}{f'{verified}/{len(got)}':>10}"
        )
        done = done and len(ok_ids) >= endpoint.expected
    return rows, done


def _succeeded(receiver: Receiver, path: str) -> set[str]:
    """Webhook ids the receiver answered with success on `path`."""
    behaviour = receiver.behaviours.get(path, receiver.default)
    got = receiver.on(path)
    if isinstance(behaviour, FailThenAnswer):
        seen: Counter[str] = Counter()
        ok: set[str] = set()
        for request in got:
            seen[request.webhook_id] += 1
            if seen[request.webhook_id] > behaviour.failures:
                ok.add(request.webhook_id)
        return ok
    return {r.webhook_id for r in got}


async def _history(api: aiohttp.ClientSession, ids: dict[str, str]) -> list[str]:
    """Poll the history until the projector has caught up with what the receiver saw."""
    deadline = time.monotonic() + 20
    lines: list[str] = []
    while time.monotonic() < deadline:
        counts: Counter[str] = Counter()
        attempts = 0
        for sub_id in ids.values():
            async with api.get("/v1/deliveries", params={"subscription_id": sub_id}) as response:
                page = await response.json()
            for delivery in page.get("data", []):
                counts[delivery["status"]] += 1
                attempts += len(delivery.get("attempts") or [])
        lines = [
            f"{sum(counts.values())} deliveries: "
            + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        ]
        if counts and set(counts) == {"delivered"}:
            break
        await asyncio.sleep(0.3)
    return lines
