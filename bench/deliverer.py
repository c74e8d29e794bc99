"""Deliveries per second of one deliverer process against a local receiver, and the ceiling.

A receiver answering 200 runs in its own process (`python -m hookline.app.receiver`). `--count`
commands for `--subscriptions` subscriptions are produced to `deliveries` first; then one
Deliverer runs in this process until every one is delivered (rate measured from the first
delivery, so the group join is left out). In the same run a bare aiohttp client loop with the
deliverer's concurrency POSTs the same bodies to the same receiver: the receiver's ceiling.

    .venv/bin/python -m bench.deliverer [--count 20000] [--subscriptions 100]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import aiohttp
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from bench.cleanup import drop_prefix
from core.ids import delivery_id
from core.records import DeliveryCommand, StoredSecret, Subscription, utc_ms
from core.secretbox import SecretBox
from core.signing import generate_secret
from core.webhook import render_body
from deliverer.service import Deliverer, new_event_loop
from hookline.app.localstack.stack import local_settings, start_stack
from hookline.runtime.codecs import open_codec
from hookline.runtime.kafka import producer_config
from hookline.runtime.producing import Acks
from hookline.runtime.settings import Secret, Settings
from hookline.runtime.subscription_log import SubscriptionLog
from hookline.runtime.subscription_table import SubscriptionTable
from hookline.runtime.topics import ensure_topics
from schemas.records_avro import RecordCodec

BENCH_DIR: Final = Path(__file__).resolve().parent.parent / ".hookline" / "bench"
MAX_CONNECTIONS: Final = 1024  # the deliverer's connector limit


def _settings() -> Settings:
    base = Settings.load().with_changes(
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
        secret_key=Secret(base64.b64encode(secrets.token_bytes(32)).decode()),
        allowed_target_networks=(ipaddress.ip_network("127.0.0.0/8"),),
    )
    if base.kafka_bootstrap:
        return base.with_changes(replication_factor=1, min_insync_replicas=1)
    return local_settings(base, start_stack(BENCH_DIR / "local", cache_dir=base.cache_dir))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_receiver(port: int) -> subprocess.Popen[bytes]:
    receiver = subprocess.Popen(
        [sys.executable, "-m", "hookline.app.receiver", "--port", str(port)],
        stdout=subprocess.PIPE,
    )
    assert receiver.stdout is not None
    receiver.stdout.readline()  # "receiver listening on ..."
    return receiver


def _subscriptions(settings: Settings, codec: RecordCodec, url: str, n: int) -> list[Subscription]:
    assert settings.secret_key is not None
    box = SecretBox.from_base64(settings.secret_key.value)
    log = SubscriptionLog(settings, codec, client_id="bench-subscriptions")
    now = utc_ms(datetime.now(UTC))
    subs = []
    for i in range(n):
        sub_id = str(uuid.uuid4())
        sealed = box.seal(generate_secret(), subscription_id=sub_id)
        sub = Subscription(
            id=sub_id,
            tenant="bench",
            url=f"{url}/s{i}",
            event_types=("*",),
            description="bench",
            created_at=now,
            updated_at=now,
            secrets=(StoredSecret(sealed, None),),
        )
        log.put(sub)
        subs.append(sub)
    log.close()
    return subs


def _commands(subs: list[Subscription], count: int) -> list[DeliveryCommand]:
    now = utc_ms(datetime.now(UTC))
    commands = []
    for n in range(count):
        sub = subs[n % len(subs)]
        event_id = str(uuid.uuid4())
        body = render_body(
            type="task.created",
            occurred_at=now,
            tenant="bench",
            subject={"type": "task", "id": f"t{n}"},
            actor=None,
            data={"id": f"t{n}", "title": "bench", "project_id": "p1", "assignee_id": None},
        )
        commands.append(
            DeliveryCommand(
                delivery_id=delivery_id(event_id, sub.id),
                event_id=event_id,
                event_type="task.created",
                tenant="bench",
                subscription_id=sub.id,
                occurred_at=now,
                payload=body,
                attempt=0,
                created_at=now,
                not_before=None,
                origin="route",
                job_id=None,
                last_error=None,
            )
        )
    return commands


def _produce(settings: Settings, codec: RecordCodec, commands: list[DeliveryCommand]) -> None:
    producer = Producer(producer_config(settings, client_id="bench-commands", linger_ms=20))
    topic = settings.topic("deliveries")
    acks = Acks(producer, timeout_s=60)
    for command in commands:
        value = codec.encode_delivery_command(command)
        acks.produce(topic, key=command.subscription_id, value=value)
    acks.wait()


def _run_deliverer(settings: Settings, count: int) -> tuple[float, int]:
    """Deliveries/s from the first delivery to the last, and the count in that window."""
    registry = CollectorRegistry()
    deliverer = Deliverer(settings, registry, client_id="bench-deliverer")
    stopping = threading.Event()
    thread = threading.Thread(target=deliverer.run, args=(stopping,), daemon=True)
    thread.start()

    def delivered() -> float:
        value = registry.get_sample_value(
            "hookline_deliverer_attempts_total", {"outcome": "delivered"}
        )
        return value or 0.0

    deadline = time.monotonic() + 600
    while delivered() == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    started, first = time.perf_counter(), delivered()
    while delivered() < count and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    done = int(delivered() - first)
    stopping.set()
    thread.join(60)
    return done / elapsed, done


async def _bare_loop(url: str, commands: list[DeliveryCommand], concurrency: int) -> float:
    """The same bodies POSTed by a plain aiohttp client loop: the receiver's ceiling."""
    queue = list(range(len(commands)))
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                command = commands[queue.pop()]
                async with session.post(
                    f"{url}/s{hash(command.subscription_id) % 100}",
                    data=command.payload,
                    headers={"content-type": "application/json", "webhook-id": command.event_id},
                ) as response:
                    await response.read()
                    assert response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(commands) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--subscriptions", type=int, default=100)
    args = parser.parse_args()
    settings = _settings()
    ensure_topics(settings)
    runtime = open_codec(settings, client_id="bench-deliverer-setup")
    port = _free_port()
    receiver = _start_receiver(port)
    url = f"http://127.0.0.1:{port}"
    try:
        subs = _subscriptions(settings, runtime.codec, url, args.subscriptions)
        table = SubscriptionTable(settings, runtime.codec, client_id="bench-table")
        table.start()
        table.wait_ready(60)
        table.close()
        commands = _commands(subs, args.count)
        _produce(settings, runtime.codec, commands)
        rate, done = _run_deliverer(settings, args.count)
        concurrency = min(args.subscriptions * settings.lane_concurrency, MAX_CONNECTIONS)
        loop = new_event_loop()
        try:
            ceiling = loop.run_until_complete(_bare_loop(url, commands, concurrency))
        finally:
            loop.close()
    finally:
        receiver.terminate()
        receiver.wait(10)
        runtime.close()
        drop_prefix(settings)
    print(
        f"deliverer bench: {args.count} commands, {args.subscriptions} subscriptions, "
        f"lane concurrency {settings.lane_concurrency}, bare-loop concurrency {concurrency}"
    )
    print(f"{'':28}{'deliveries/s':>14}")
    print(f"{'one deliverer process':28}{rate:>14,.0f}   ({done} timed)")
    print(f"{'bare aiohttp client loop':28}{ceiling:>14,.0f}")
    print(f"{'ratio':28}{rate / ceiling:>14.2f}")


if __name__ == "__main__":
    main()
