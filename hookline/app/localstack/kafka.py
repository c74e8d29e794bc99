"""Real Apache Kafka 4.x (KRaft, broker and controller in one JVM per node) from Maven Central's
jars: one node, or a cluster of three whose nodes are all voters of the metadata quorum.

The jars are fetched once with Maven into a cache folder outside the repository; each node's
data and its state file (pid, ports) live in the data folder (a cluster's node n in `node-n`),
so a second start finds the running nodes and reuses them, and starts again any that stopped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from hookline.app.localstack.process import (
    PRIVATE_UMASK,
    folder_lock,
    free_port,
    make_private,
    pid_alive,
    port_is_free,
    read_state,
    terminate,
    wait_for,
    write_state,
)
from hookline.app.localstack.secure import (
    USERNAME,
    SecureAccess,
    add_scram_user,
    ensure_certificates,
    secure_listener_answers,
    with_secure_listener,
)
from hookline.runtime.errors import LocalStackError

KAFKA_VERSION: Final = "4.1.1"
START_TIMEOUT_S: Final = 90.0
CLUSTER_SIZES: Final = (1, 3)
QUORUM_STATE: Final = Path("logs/__cluster_metadata-0/quorum-state")


@dataclass(frozen=True, slots=True)
class RunningKafka:
    bootstrap: str  # every node's address, comma-separated
    pids: tuple[int, ...]
    reused: bool
    secure: SecureAccess | None = None
    """The SASL_SSL listener, when the broker was asked for one."""

    @property
    def brokers(self) -> int:
        return len(self.pids)


@dataclass(frozen=True, slots=True)
class Durability:
    """What the topics of a local cluster ask for: on three nodes one may be lost (or paused,
    or restarting) while writes go on; one node can only hold one replica."""

    replication_factor: int
    min_insync_replicas: int


def durability(brokers: int) -> Durability:
    return Durability(1, 1) if brokers == 1 else Durability(3, 2)


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One node of the local Kafka as its folder records it; `pid` is None when not running."""

    node_id: int
    folder: Path
    pid: int | None
    address: str | None


def node_folders(data: Path, brokers: int) -> tuple[Path, ...]:
    """The folder of each node: a single broker keeps the data folder itself (its layout from
    before clusters), node n of a cluster lives in `node-n`."""
    if brokers == 1:
        return (data,)
    return tuple(data / f"node-{n}" for n in range(1, brokers + 1))


def brokers_in(data: Path) -> int | None:
    """How many nodes the Kafka in `data` was made with; None when it was never started."""
    nodes = len(list(data.glob("node-*/server.properties")))
    if nodes:
        return nodes
    return 1 if (data / "server.properties").exists() else None


def ensure_jars(cache_dir: Path) -> Path:
    """The folder of the broker's jars under `cache_dir`, fetched with Maven on first use."""
    folder = cache_dir / f"kafka-{KAFKA_VERSION}"
    libs = folder / "libs"
    marker = folder / "complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalStackError("kafka", "Maven (mvn) is not installed; apt-get install maven")
    if shutil.which("java") is None:
        raise LocalStackError("kafka", "a JDK 17+ is not installed; apt-get install default-jdk")
    folder.mkdir(parents=True, exist_ok=True)
    pom = folder / "pom.xml"
    pom.write_text(resources.files("hookline.app.localstack").joinpath("pom.xml").read_text())
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom), "package", f"-Dlibs.dir={libs}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise LocalStackError("kafka", "Maven could not fetch the jars: " + " | ".join(tail))
    marker.write_text(KAFKA_VERSION)
    return libs


def _cluster_answers(bootstrap: str, brokers: int) -> bool:
    """Every node is registered and serving (a restarted node rejoins its running peers)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=2)
    except KafkaException:
        return False
    return len(metadata.brokers) >= brokers


@dataclass(frozen=True, slots=True)
class _Ports:
    port: int
    cport: int


def _properties(folder: Path, node_id: int, ports: _Ports, voters: str, brokers: int) -> str:
    # the internal topics (offsets, transactions) as durable as hookline's own
    wanted = durability(brokers)
    rf, isr = wanted.replication_factor, wanted.min_insync_replicas
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://127.0.0.1:{ports.port},CONTROLLER://127.0.0.1:{ports.cport}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{ports.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={folder / 'logs'}",
            "num.partitions=3",
            "auto.create.topics.enable=false",
            f"min.insync.replicas={isr}",
            f"offsets.topic.replication.factor={rf}",
            "offsets.topic.num.partitions=3",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={isr}",
            "transaction.state.log.num.partitions=3",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={isr}",
            "share.coordinator.state.topic.num.partitions=1",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.dedupe.buffer.size=8388608",
            "log.segment.bytes=67108864",
            "transaction.abort.timed.out.transaction.cleanup.interval.ms=5000",
            "transaction.remove.expired.transaction.cleanup.interval.ms=5000",
            "",
        ]
    )


def start_kafka(
    data: Path,
    *,
    cache_dir: Path,
    brokers: int | None = None,
    timeout_s: float = START_TIMEOUT_S,
    scram_password: str | None = None,
) -> RunningKafka:
    """Start the Kafka in `data` (its jars in `cache_dir`) with `brokers` nodes, or reuse the
    one running there, starting again any of its nodes that stopped. `brokers` None: as many
    as the folder was made with, one for a new folder.

    With `scram_password` every node also listens for SASL_SSL (`secure.py`) and the SCRAM
    user has that password."""
    data = data.resolve()
    with folder_lock(data):
        make_private(data)
        brokers = _cluster_size(data, brokers)
        folders = node_folders(data, brokers)
        states = [read_state(folder / "state.json") for folder in folders]
        running = [_running_pid(state) for state in states]
        if all(running):
            bootstrap = _bootstrap(states)
            if wait_for(
                lambda: True if _cluster_answers(bootstrap, brokers) else None,
                timeout_s=timeout_s,
            ):
                secure = _secure(data, folders, bootstrap, scram_password, timeout_s=timeout_s)
                return RunningKafka(
                    bootstrap, tuple(p for p in running if p), reused=True, secure=secure
                )
        libs = ensure_jars(cache_dir)
        ports = _ports(states, running)
        voters = ",".join(f"{n}@127.0.0.1:{p.cport}" for n, p in enumerate(ports, start=1))
        cluster_id = _cluster_id(folders)
        taken = {port for p in ports for port in (p.port, p.cport)}
        pids: list[int] = []
        for node_id, (folder, node_ports, state, pid) in enumerate(
            zip(folders, ports, states, running, strict=True), start=1
        ):
            if pid is not None:
                pids.append(pid)
                continue
            props = _properties(folder, node_id, node_ports, voters, brokers)
            extra: dict[str, int | str] = {}
            if scram_password is not None:
                extra["secure_port"] = _secure_port(state, taken)
                tls = ensure_certificates(data / "tls")  # one CA and certificate for every node
                props = with_secure_listener(props, port=int(extra["secure_port"]), tls=tls)
            pids.append(_start_node(libs, folder, node_ports, props, cluster_id, extra=extra))
        bootstrap = ",".join(f"127.0.0.1:{p.port}" for p in ports)
        ready = wait_for(
            lambda: True if _cluster_answers(bootstrap, brokers) else None,
            timeout_s=timeout_s,
            alive=lambda: all(pid_alive(pid) for pid in pids),
        )
        if not ready:
            for pid in pids:
                terminate(pid)
            logs = ", ".join(str(folder / "kafka.log") for folder in folders)
            raise LocalStackError("kafka", f"did not become ready; see {logs}")
        secure = _secure(data, folders, bootstrap, scram_password, timeout_s=timeout_s)
        return RunningKafka(bootstrap, tuple(pids), reused=False, secure=secure)


def _secure_port(state: dict[str, int | str] | None, taken: set[int]) -> int:
    """A node's SASL_SSL port: the one it had when still free, else a new one."""
    if state is not None and "secure_port" in state:
        port = int(state["secure_port"])
        if port not in taken and port_is_free(port):
            taken.add(port)
            return port
    return _new_port(taken)


def _secure(
    data: Path,
    folders: tuple[Path, ...],
    bootstrap: str,
    scram_password: str | None,
    *,
    timeout_s: float,
) -> SecureAccess | None:
    """The secure listeners of running nodes, the SCRAM user's password set to
    `scram_password`; None when not asked for."""
    if scram_password is None:
        return None
    states = [read_state(folder / "state.json") or {} for folder in folders]
    if not all("secure_port" in state for state in states):
        raise LocalStackError(
            "kafka", "runs without --secure; stop it first with `hookline stack stop`"
        )
    add_scram_user(bootstrap, username=USERNAME, password=scram_password)
    secure_bootstrap = ",".join(f"127.0.0.1:{state['secure_port']}" for state in states)
    access = SecureAccess(secure_bootstrap, data / "tls" / "ca.pem", USERNAME, scram_password)
    if not wait_for(lambda: True if secure_listener_answers(access) else None, timeout_s=timeout_s):
        logs = ", ".join(str(folder / "kafka.log") for folder in folders)
        raise LocalStackError("kafka", f"the SASL_SSL listener did not answer; see {logs}")
    return access


def _cluster_size(data: Path, wanted: int | None) -> int:
    made = brokers_in(data)
    if wanted is not None and wanted not in CLUSTER_SIZES:
        sizes = " or ".join(str(n) for n in CLUSTER_SIZES)
        raise LocalStackError("kafka", f"{wanted} brokers asked; the local stack runs {sizes}")
    if wanted is not None and made is not None and wanted != made:
        raise LocalStackError(
            "kafka",
            f"{data} holds a Kafka of {made} broker(s), not {wanted}; "
            "`hookline stack stop` and delete that folder to change it",
        )
    return wanted or made or 1


def _start_node(
    libs: Path,
    folder: Path,
    ports: _Ports,
    properties: str,
    cluster_id: str,
    *,
    extra: dict[str, int | str],
) -> int:
    folder.mkdir(exist_ok=True)
    make_private(folder)
    props = folder / "server.properties"
    props.write_text(properties)
    if not (folder / "logs" / "meta.properties").exists():
        _format(libs, props, folder, cluster_id)
    pid = _launch(libs, props, folder)
    bootstrap = f"127.0.0.1:{ports.port}"
    state: dict[str, int | str] = {
        "pid": pid,
        "bootstrap": bootstrap,
        "port": ports.port,
        "cport": ports.cport,
        **extra,
    }
    write_state(folder / "state.json", state)
    return pid


def _running_pid(state: dict[str, int | str] | None) -> int | None:
    if state is None or not pid_alive(int(state["pid"])):
        return None
    return int(state["pid"])


def _bootstrap(states: list[dict[str, int | str] | None]) -> str:
    return ",".join(str(state["bootstrap"]) for state in states if state is not None)


def kafka_nodes(data: Path) -> tuple[KafkaNode, ...]:
    """Each node of the Kafka in `data` (none for a folder never started)."""
    data = data.resolve()
    nodes: list[KafkaNode] = []
    for node_id, folder in enumerate(node_folders(data, brokers_in(data) or 0), start=1):
        state = read_state(folder / "state.json")
        pid = _running_pid(state)
        address = str(state["bootstrap"]) if state is not None else None
        nodes.append(KafkaNode(node_id, folder, pid, address if pid else None))
    return tuple(nodes)


def quorum_leader(quorum_states: Iterable[str]) -> int | None:
    """The active controller named by the nodes' `quorum-state` files (KRaft rewrites its
    own on every election): the leader of the newest epoch any node has seen."""
    newest: tuple[int, int] | None = None
    for text in quorum_states:
        try:
            state = json.loads(text)
            epoch, leader = int(state["leaderEpoch"]), int(state["leaderId"])
        except (ValueError, KeyError, TypeError):
            continue  # a file being rewritten: the other nodes still tell
        if leader >= 0 and (newest is None or epoch > newest[0]):
            newest = (epoch, leader)
    return None if newest is None else newest[1]


def active_controller(data: Path) -> int | None:
    """The node id of the running cluster's active controller, as its nodes last recorded."""
    texts: list[str] = []
    for node in kafka_nodes(data):
        if node.pid is not None:
            with contextlib.suppress(OSError):
                texts.append((node.folder / QUORUM_STATE).read_text())
    return quorum_leader(texts)


def kafka_pids(data: Path) -> tuple[int, ...]:
    """The pids of the nodes running in `data`."""
    return tuple(node.pid for node in kafka_nodes(data) if node.pid is not None)


def stop_kafka(data: Path) -> bool:
    """Stop every node of `data` that runs; True when one was stopped. All are told at once:
    a node told after its peers had gone would wait out its shutdown for a quorum."""
    pids = kafka_pids(data)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        terminate(pid, timeout_s=30.0)
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            child.wait(timeout=5)
    return bool(pids)


def _ports(states: list[dict[str, int | str] | None], running: list[int | None]) -> list[_Ports]:
    """A running node's ports; a stopped one keeps its previous ports when still free, so the
    stored metadata and its peers' voter list stay consistent; new ports are all distinct."""
    taken: set[int] = set()
    chosen: list[_Ports | None] = []
    for state, pid in zip(states, running, strict=True):
        ports = None
        if state is not None:
            ports = _Ports(int(state["port"]), int(state["cport"]))
            if pid is None and not (port_is_free(ports.port) and port_is_free(ports.cport)):
                ports = None
        if ports is not None:
            taken |= {ports.port, ports.cport}
        chosen.append(ports)
    return [ports or _Ports(_new_port(taken), _new_port(taken)) for ports in chosen]


def _new_port(taken: set[int]) -> int:
    port = free_port()
    while port in taken:
        port = free_port()
    taken.add(port)
    return port


def _cluster_id(folders: tuple[Path, ...]) -> str:
    """The id a node still to be formatted joins: its formatted peers', else a new one."""
    for folder in folders:
        meta = folder / "logs" / "meta.properties"
        if meta.exists():
            for line in meta.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "cluster.id":
                    return value.strip()
    return new_cluster_id()


def _java_command(libs: Path, main: str, *args: str) -> list[str]:
    return ["java", "-Xms256m", "-Xmx512m", "-cp", f"{libs}/*", main, *args]


def new_cluster_id() -> str:
    """A KRaft cluster id: the base64url of a random UUID, never starting with "-", which the
    storage tool's argument parser takes for an option (1 id in 64; Kafka's own
    `Uuid.randomUuid` draws again in the same case)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _format(libs: Path, props: Path, data: Path, cluster_id: str) -> None:
    result = subprocess.run(
        _java_command(
            libs, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)
        ),
        capture_output=True,
        text=True,
        check=False,
        cwd=data,
        umask=PRIVATE_UMASK,
    )
    if result.returncode != 0:
        raise LocalStackError("kafka", f"storage format failed: {result.stderr.strip()[-300:]}")


# Brokers started by this process: kept referenced so they are reaped, not reported as leaked.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _launch(libs: Path, props: Path, data: Path) -> int:
    command = _java_command(libs, "kafka.Kafka", str(props))
    command.insert(1, "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
    with (data / "kafka.log").open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=data,
            start_new_session=True,
            umask=PRIVATE_UMASK,
        )
    _CHILDREN[process.pid] = process
    return process.pid
