"""Admin API latency under concurrent load: create-subscription and publish-event.

Runs the API in-process (its own thread and event loop) on the local stack, or on the Kafka
and PostgreSQL of HOOKLINE_KAFKA_BOOTSTRAP / HOOKLINE_DATABASE_URL, and drives it with
`--clients` concurrent HTTP clients until each operation has run `--count` times.

    .venv/bin/python -m bench.api [--clients 32] [--count 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Final

import aiohttp
from prometheus_client import CollectorRegistry

from api.http.service import ApiService
from bench.cleanup import drop_prefix
from hookline.app.localstack.stack import local_settings, start_stack
from hookline.runtime.settings import Secret, Settings
from hookline.runtime.topics import ensure_topics

BENCH_DIR: Final = Path(__file__).resolve().parent.parent / ".hookline" / "bench"


def _settings() -> Settings:
    base = Settings.load().with_changes(
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
        admin_token=Secret("bench-admin-" + secrets.token_urlsafe(16)),
        secret_key=Secret(base64.b64encode(secrets.token_bytes(32)).decode()),
        api_port=0,
        # latency is measured here, not the quotas: one tenant makes every request to one URL
        max_subscriptions_per_tenant=1_000_000,
        max_subscriptions_per_url=1_000_000,
        publish_rate_per_s=1e9,
        publish_burst=1_000_000,
    )
    if base.kafka_bootstrap:
        return base
    stack = start_stack(BENCH_DIR / "local", cache_dir=base.cache_dir)
    return local_settings(base, stack)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(base_url: str, token: str, *, clients: int, count: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"create-subscription": [], "publish-event": []}
    headers = {"Authorization": f"Bearer {token}"}
    requests = {
        "create-subscription": (
            "/v1/subscriptions",
            {"url": "https://example.com/hook", "event_types": ["task.*"]},
            201,
        ),
        "publish-event": (
            "/v1/events",
            {
                "type": "task.created",
                "subject": {"type": "task", "id": "t-1"},
                "data": {"id": "t-1", "title": "Bench", "project_id": "p-1"},
            },
            202,
        ),
    }
    queue: asyncio.Queue[str] = asyncio.Queue()
    for _ in range(count):
        for name in requests:
            queue.put_nowait(name)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            name = queue.get_nowait()
            path, body, status = requests[name]
            started = time.perf_counter()
            async with session.post(base_url + path, json=body, headers=headers) as response:
                await response.read()
                if response.status != status:
                    raise RuntimeError(f"{name}: HTTP {response.status}")
            timings[name].append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--count", type=int, default=2000, help="requests per operation")
    args = parser.parse_args()

    settings = _settings()
    ensure_topics(settings)
    service = ApiService(settings, CollectorRegistry())
    stopping = threading.Event()
    thread = threading.Thread(target=service.run, args=(stopping,), daemon=True)
    thread.start()
    while not service.ready:
        if not thread.is_alive():
            raise SystemExit("the API did not start")
        time.sleep(0.05)
    assert settings.admin_token is not None
    try:
        started = time.perf_counter()
        timings = asyncio.run(
            _load(
                f"http://{settings.api_host}:{service.port}",
                settings.admin_token.value,
                clients=args.clients,
                count=args.count,
            )
        )
        elapsed = time.perf_counter() - started
    finally:
        stopping.set()
        thread.join(30)
        drop_prefix(settings)

    print(f"admin API, {args.clients} concurrent clients, {args.count} requests per operation")
    print(f"{'operation':<22}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'max ms':>9}")
    for name, values in timings.items():
        ms = [v * 1000 for v in values]
        print(
            f"{name:<22}{_percentile(ms, 0.50):>9.1f}{_percentile(ms, 0.99):>9.1f}"
            f"{statistics.fmean(ms):>9.1f}{max(ms):>9.1f}"
        )
    total = sum(len(v) for v in timings.values())
    print(f"total {total} requests in {elapsed:.1f} s: {total / elapsed:.0f} requests/s")


if __name__ == "__main__":
    main()
