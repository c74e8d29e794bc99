"""The local Kafka: a cluster id never looks like a command-line option; a cluster's layout,
durability and active controller."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookline.app.localstack import kafka
from hookline.runtime.errors import LocalStackError


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 makes the first base64url character "-" (index 62): such an id is drawn again
    drawn: Iterator[uuid.UUID] = iter(
        [uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x00" + bytes(15))]
    )
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))
    assert kafka.new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_cluster_ids_are_22_characters_of_base64url() -> None:
    for _ in range(500):
        cluster_id = kafka.new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")


def _quorum_state(leader: int, epoch: int) -> str:
    return (
        f'{{"clusterId":"","leaderId":{leader},"leaderEpoch":{epoch},"votedId":-1,'
        '"appliedOffset":0,"currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],'
        '"data_version":0}'
    )


def test_the_active_controller_is_the_leader_of_the_newest_epoch() -> None:
    # node 3 was killed while 1 led epoch 4; 2 won epoch 5 and 1 follows it
    states = [_quorum_state(2, 5), _quorum_state(2, 5), _quorum_state(1, 4)]
    assert kafka.quorum_leader(states) == 2


def test_an_election_in_progress_or_a_torn_file_names_no_one_wrongly() -> None:
    # leaderId -1: an epoch with no leader yet; "{": a file caught mid-rewrite
    assert kafka.quorum_leader([_quorum_state(-1, 6), "{", _quorum_state(3, 5)]) == 3
    assert kafka.quorum_leader([_quorum_state(-1, 6)]) is None
    assert kafka.quorum_leader([]) is None


def test_a_cluster_keeps_three_replicas_two_in_sync_and_one_node_keeps_one() -> None:
    assert kafka.durability(3) == kafka.Durability(3, 2)
    assert kafka.durability(1) == kafka.Durability(1, 1)


def test_a_single_broker_keeps_its_folder_and_each_node_of_three_has_its_own(
    tmp_path: Path,
) -> None:
    assert kafka.node_folders(tmp_path, 1) == (tmp_path,)
    assert kafka.node_folders(tmp_path, 3) == tuple(tmp_path / f"node-{n}" for n in (1, 2, 3))


def test_a_folder_keeps_the_size_it_was_made_with(tmp_path: Path) -> None:
    single, cluster = tmp_path / "single", tmp_path / "cluster"
    single.mkdir()
    (single / "server.properties").write_text("node.id=1\n")
    for n in (1, 2, 3):
        (cluster / f"node-{n}").mkdir(parents=True)
        (cluster / f"node-{n}" / "server.properties").write_text(f"node.id={n}\n")
    assert kafka.brokers_in(tmp_path / "new") is None
    assert kafka.brokers_in(single) == 1
    assert kafka.brokers_in(cluster) == 3
    with pytest.raises(LocalStackError, match=r"holds a Kafka of 1 broker\(s\), not 3"):
        kafka.start_kafka(single, cache_dir=tmp_path / "cache", brokers=3)
    with pytest.raises(LocalStackError, match="2 brokers asked; the local stack runs 1 or 3"):
        kafka.start_kafka(tmp_path / "new", cache_dir=tmp_path / "cache", brokers=2)
