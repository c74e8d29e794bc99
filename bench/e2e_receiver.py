"""The end-to-end benchmark's webhook receiver, run in its own process.

Paths choose the answer: `/hang/...` sleeps `--hang-s` (past the delivery timeout) before
answering, `/fail/...` answers 500, `/stall/...` never answers (past any delivery timeout),
`/throttle/...` answers 503 with `Retry-After: 290`, `/burst/...` and every other path answer
200 at once (`burst` is counted apart: the hostile scenario's burst target). The first arrival
of each webhook-id is kept (path, arrival time, body); `GET /_bench/progress` counts first
arrivals by path kind and `GET /_bench/dump` returns them with the body's `timestamp`
(occurred_at), so the benchmark computes latency = arrival - occurred_at.

    .venv/bin/python -m bench.e2e_receiver --port N [--hang-s 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from typing import Final

import orjson
from aiohttp import web

KINDS: Final = ("ok", "hang", "fail", "stall", "throttle", "burst")
DELIVERING_KINDS: Final = frozenset({"ok", "burst"})
"""Kinds whose paths answer 200: a first arrival there is a delivery."""
STALL_S: Final = 3600.0
"""A stalled request waits this long: longer than any delivery timeout or benchmark run."""
RETRY_AFTER_S: Final = 290


def kind_of(path: str) -> str:
    """One of `KINDS` from the first path segment (`ok` when it names none)."""
    head = path[1:].split("/", 1)[0]
    return head if head in KINDS else "ok"


class Recorder:
    """First arrival per webhook-id, and request counts by kind."""

    def __init__(self, hang_s: float) -> None:
        self.hang_s = hang_s
        self.first: dict[str, tuple[str, float, bytes]] = {}
        self.first_by_kind: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived_s = time.time()
        webhook_id = request.headers.get("webhook-id", "")
        path = request.path
        kind = kind_of(path)
        self.requests[kind] += 1
        if webhook_id not in self.first:
            self.first[webhook_id] = (path, arrived_s, body)
            self.first_by_kind[kind] += 1
        if kind == "hang":
            await asyncio.sleep(self.hang_s)
        elif kind == "stall":
            await asyncio.sleep(STALL_S)
        elif kind == "fail":
            return web.Response(status=500, text="failing on purpose")
        elif kind == "throttle":
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            return web.Response(status=503, headers=headers, text="throttling on purpose")
        return web.Response(text="ok")

    async def progress(self, _request: web.Request) -> web.Response:
        body = {"first": dict(self.first_by_kind), "requests": dict(self.requests)}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def dump(self, _request: web.Request) -> web.Response:
        rows = []
        for webhook_id, (path, arrived_s, body) in self.first.items():
            try:
                timestamp = orjson.loads(body).get("timestamp")
            except orjson.JSONDecodeError:
                timestamp = None
            rows.append((webhook_id, path, arrived_s, timestamp))
        return web.Response(body=orjson.dumps(rows), content_type="application/json")


async def _serve(port: int, hang_s: float) -> None:
    recorder = Recorder(hang_s)
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/_bench/progress", recorder.progress)
    app.router.add_get("/_bench/dump", recorder.dump)
    app.router.add_route("*", "/{tail:.*}", recorder.webhook)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print(f"receiver listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hang-s", type=float, default=3.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(_serve(args.port, args.hang_s))
    except ImportError:
        asyncio.run(_serve(args.port, args.hang_s))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
