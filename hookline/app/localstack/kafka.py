"""Real Apache Kafka 4.x (KRaft, broker and controller in one JVM) from Maven Central's jars.

The jars are fetched once with Maven into a cache folder outside the repository; the broker's
data and its state file (pid, ports) live in the data folder, so a second start finds the
running broker and reuses it.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
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


@dataclass(frozen=True, slots=True)
class RunningKafka:
    bootstrap: str
    pid: int
    reused: bool
    secure: SecureAccess | None = None
    """The SASL_SSL listener, when the broker was asked for one."""


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


def _broker_answers(bootstrap: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=2)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def _properties(data: Path, port: int, cport: int) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{cport}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data / 'logs'}",
            "num.partitions=3",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=3",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
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
    timeout_s: float = START_TIMEOUT_S,
    scram_password: str | None = None,
) -> RunningKafka:
    """Start the broker in `data` (its jars in `cache_dir`), or reuse the one running there.

    With `scram_password` the broker also listens for SASL_SSL (`secure.py`) and its SCRAM
    user has that password."""
    data = data.resolve()
    with folder_lock(data):
        make_private(data)
        state_file = data / "state.json"
        state = read_state(state_file)
        if state is not None:
            pid, bootstrap = int(state["pid"]), str(state["bootstrap"])
            if pid_alive(pid) and wait_for(
                lambda: True if _broker_answers(bootstrap) else None, timeout_s=timeout_s
            ):
                secure = _secure(data, state, bootstrap, scram_password, timeout_s=timeout_s)
                return RunningKafka(bootstrap, pid, reused=True, secure=secure)
        libs = ensure_jars(cache_dir)
        port, cport = _ports(state)
        props = data / "server.properties"
        text = _properties(data, port, cport)
        extra: dict[str, int | str] = {}
        if scram_password is not None:
            extra["secure_port"] = _secure_port(state)
            tls = ensure_certificates(data / "tls")
            text = with_secure_listener(text, port=int(extra["secure_port"]), tls=tls)
        props.write_text(text)
        if not (data / "logs" / "meta.properties").exists():
            _format(libs, props, data)
        pid = _launch(libs, props, data)
        bootstrap = f"127.0.0.1:{port}"
        state = {"pid": pid, "bootstrap": bootstrap, "port": port, "cport": cport, **extra}
        write_state(state_file, state)
        ready = wait_for(
            lambda: True if _broker_answers(bootstrap) else None,
            timeout_s=timeout_s,
            alive=lambda: pid_alive(pid),
        )
        if not ready:
            terminate(pid)
            raise LocalStackError("kafka", f"did not become ready; see {data / 'kafka.log'}")
        secure = _secure(data, state, bootstrap, scram_password, timeout_s=timeout_s)
        return RunningKafka(bootstrap, pid, reused=False, secure=secure)


def _secure_port(state: dict[str, int | str] | None) -> int:
    if state is not None and "secure_port" in state and port_is_free(int(state["secure_port"])):
        return int(state["secure_port"])
    return free_port()


def _secure(
    data: Path,
    state: dict[str, int | str],
    bootstrap: str,
    scram_password: str | None,
    *,
    timeout_s: float,
) -> SecureAccess | None:
    """The secure listener of a running broker, its SCRAM user set to `scram_password`;
    None when not asked for."""
    if scram_password is None:
        return None
    if "secure_port" not in state:
        raise LocalStackError(
            "kafka", "runs without --secure; stop it first with `hookline stack stop`"
        )
    add_scram_user(bootstrap, username=USERNAME, password=scram_password)
    access = SecureAccess(
        f"127.0.0.1:{state['secure_port']}", data / "tls" / "ca.pem", USERNAME, scram_password
    )
    if not wait_for(lambda: True if secure_listener_answers(access) else None, timeout_s=timeout_s):
        raise LocalStackError(
            "kafka", f"the SASL_SSL listener did not answer; see {data / 'kafka.log'}"
        )
    return access


def kafka_pid(data: Path) -> int | None:
    """The pid of the broker running in `data`, if one runs."""
    state = read_state(data.resolve() / "state.json")
    if state is None or not pid_alive(int(state["pid"])):
        return None
    return int(state["pid"])


def stop_kafka(data: Path) -> bool:
    """Stop the broker of `data` if one runs; True when one was stopped."""
    pid = kafka_pid(data)
    if pid is None:
        return False
    terminate(pid, timeout_s=30.0)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=5)
    return True


def _ports(state: dict[str, int | str] | None) -> tuple[int, int]:
    """Keep the previous ports when still free, so the stored metadata stays consistent."""
    if state is not None:
        port, cport = int(state["port"]), int(state["cport"])
        if port_is_free(port) and port_is_free(cport):
            return port, cport
    return free_port(), free_port()


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


def _format(libs: Path, props: Path, data: Path) -> None:
    cluster_id = new_cluster_id()
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
