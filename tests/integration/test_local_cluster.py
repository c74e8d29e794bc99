"""The local stack's three-broker Kafka (`hookline stack start --brokers 3`): one cluster of
three nodes, topics and Kafka's own internal topics with 3 replicas and two in sync, a
stopped node started again beside the running ones, and every node stopped by one stop."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from hookline.app.localstack import kafka as local_kafka
from hookline.app.localstack.kafka import (
    RunningKafka,
    active_controller,
    kafka_nodes,
    kafka_pids,
    start_kafka,
    stop_kafka,
)
from hookline.runtime.settings import Settings
from hookline.runtime.topics import ensure_topics
from tests.chaos.cluster import out_of_sync, partitions

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("cluster")
    yield folder
    stop_kafka(folder)


@pytest.fixture(scope="module")
def cluster(cluster_dir: Path) -> RunningKafka:
    return start_kafka(cluster_dir, cache_dir=Settings.load().cache_dir, brokers=3)


def test_three_nodes_form_one_cluster(cluster: RunningKafka, cluster_dir: Path) -> None:
    nodes = kafka_nodes(cluster_dir)
    assert [node.node_id for node in nodes] == [1, 2, 3]
    assert [node.folder for node in nodes] == [cluster_dir / f"node-{n}" for n in (1, 2, 3)]
    assert tuple(node.pid for node in nodes) == cluster.pids
    assert cluster.bootstrap == ",".join(str(node.address) for node in nodes)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    assert sorted(admin.list_topics(timeout=10).brokers) == [1, 2, 3]
    assert active_controller(cluster_dir) in {1, 2, 3}


def test_topics_and_kafkas_own_keep_three_replicas_two_in_sync(cluster: RunningKafka) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    broker = ConfigResource(ResourceType.BROKER, "1")
    configs = admin.describe_configs([broker])[broker].result(timeout=10)
    wanted = {
        "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
    }
    assert {name: configs[name].value for name in wanted} == wanted
    prefix = f"cluster{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka_bootstrap=cluster.bootstrap,
        topic_prefix=prefix,
        partitions=3,
        replication_factor=3,
        min_insync_replicas=2,
    )
    ensure_topics(settings)
    views = partitions(cluster.bootstrap, prefix)
    assert views
    assert not out_of_sync(views, 3)


def test_a_node_killed_is_started_again_beside_the_running_ones(
    cluster: RunningKafka, cluster_dir: Path
) -> None:
    killed = cluster.pids[1]
    os.kill(killed, signal.SIGKILL)
    local_kafka._CHILDREN.pop(killed).wait(30)
    assert len(kafka_pids(cluster_dir)) == 2
    again = start_kafka(cluster_dir, cache_dir=Settings.load().cache_dir)
    assert not again.reused
    assert again.bootstrap == cluster.bootstrap
    assert (again.pids[0], again.pids[2]) == (cluster.pids[0], cluster.pids[2])
    assert again.pids[1] != killed
    assert start_kafka(cluster_dir, cache_dir=Settings.load().cache_dir).reused


def test_one_stop_stops_every_node(cluster: RunningKafka, cluster_dir: Path) -> None:
    assert stop_kafka(cluster_dir)
    assert kafka_pids(cluster_dir) == ()
    assert all(node.pid is None for node in kafka_nodes(cluster_dir))
