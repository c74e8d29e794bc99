"""How long one router-sized Kafka transaction takes, phase by phase, back to back.

A transactional producer with the router's configuration (`hookline.runtime.kafka.producer_config`)
runs `--transactions` transactions in a row, each: begin, produce `--records` 1 KiB records
over the topic's partitions, `send_offsets_to_transaction` for a consumer group, commit.
It prints the median and max of each phase. `--retry-backoff-ms` overrides the producer's
`retry.backoff.ms`, to compare with librdkafka's default (100 ms).

    .venv/bin/python -m bench.transactions [--transactions 40] [--records 20]
                                           [--retry-backoff-ms 100]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.router import bench_settings
from hookline.runtime.kafka import admin_config, consumer_config, producer_config

WARM_UP = 5
PHASES = ("begin + produce", "send_offsets_to_transaction", "commit_transaction")


def measure(transactions: int, records: int, retry_backoff_ms: int | None) -> list[list[float]]:
    settings = bench_settings()
    topic = settings.topic("transactions-probe")
    admin = AdminClient(admin_config(settings))
    admin.create_topics([NewTopic(topic, settings.partitions, settings.replication_factor)])[
        topic
    ].result()
    config = producer_config(
        settings, client_id="bench-transactions", transactional_id=f"{topic}.{uuid.uuid4()}"
    )
    if retry_backoff_ms is not None:
        config["retry.backoff.ms"] = retry_backoff_ms
    producer = Producer(config)
    producer.init_transactions(30)
    consumer = Consumer(
        consumer_config(settings, group_id=f"{topic}.group", client_id="bench-transactions")
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.1)
    group = consumer.consumer_group_metadata()
    value = b"x" * 1024
    timings: list[list[float]] = [[], [], []]
    try:
        for n in range(transactions + WARM_UP):
            started = time.perf_counter()
            producer.begin_transaction()
            for k in range(records):
                producer.produce(topic, key=str(k), value=value)
            produced = time.perf_counter()
            producer.send_offsets_to_transaction([TopicPartition(topic, 0, n)], group, 30)
            sent = time.perf_counter()
            producer.commit_transaction(30)
            committed = time.perf_counter()
            if n >= WARM_UP:
                for phase, ms in enumerate(
                    ((produced - started), (sent - produced), (committed - sent))
                ):
                    timings[phase].append(ms * 1000)
    finally:
        consumer.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=40)
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--retry-backoff-ms", type=int, default=None)
    args = parser.parse_args()
    timings = measure(args.transactions, args.records, args.retry_backoff_ms)
    backoff = "hookline's" if args.retry_backoff_ms is None else f"{args.retry_backoff_ms} ms"
    print(f"{args.transactions} transactions of {args.records} records, retry.backoff {backoff}")
    for name, values in zip(PHASES, timings, strict=True):
        print(f"  {name:<28} median {statistics.median(values):6.1f} ms  max {max(values):6.1f} ms")
    total = [sum(parts) for parts in zip(*timings, strict=True)]
    print(f"  {'whole transaction':<28} median {statistics.median(total):6.1f} ms")


if __name__ == "__main__":
    main()
