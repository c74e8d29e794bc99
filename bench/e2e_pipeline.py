"""Processes of the end-to-end benchmark: the receiver, `hookline router` and `hookline deliverer`
(and, in the API-ingest scenario, `hookline api`, `projector` and `replayer` too).

Each runs as its own OS process with the scenario's settings in its environment, its output
in a log file under `.hookline/bench/logs/`. With `profile_dir` set, the router and the
deliverers run under pyinstrument and leave an HTML profile there when they stop. The
receiver's progress and first arrivals, and the services' metrics, are read over HTTP;
`Pipeline` holds one scenario's processes and counts the first arrivals they owe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import orjson

from bench.deliverer import _free_port as free_port
from bench.e2e_ingest import ApiSource
from bench.e2e_stats import Published, Row
from hookline.app.processes import child_environment
from hookline.runtime.settings import Settings, env_name, environment

LOGS_DIR: Final = Path(__file__).resolve().parent.parent / ".hookline" / "bench" / "logs"
STOP_TIMEOUT_S: Final = 60.0
WAIT_S: Final = 180.0
"""How long a phase's first arrivals, or a service's readiness, may take."""
HOOKLINE_SCRIPT: Final = Path(sys.executable).parent / "hookline"


def service_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a `hookline <service>` process these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    assert settings.kafka_bootstrap is not None
    assert settings.secret_key is not None
    values = {
        "kafka_bootstrap": settings.kafka_bootstrap,
        "secret_key": settings.secret_key.value,
        "topic_prefix": settings.topic_prefix,
        "partitions": str(settings.partitions),
        "replication_factor": str(settings.replication_factor),
        "min_insync_replicas": str(settings.min_insync_replicas),
        "allowed_target_networks": ",".join(str(n) for n in settings.allowed_target_networks),
        "delivery_timeout_s": str(settings.delivery_timeout_s),
        "data_dir": str(settings.data_dir),
        "lane_concurrency": str(settings.lane_concurrency),
        "max_in_flight": str(settings.max_in_flight),
    }
    env.update({env_name(name): value for name, value in values.items()})
    env["HOOKLINE_LOG_LEVEL"] = os.environ.get("HOOKLINE_LOG_LEVEL", "WARNING")
    return env


def platform_env(settings: Settings) -> dict[str, str]:
    """Every resolved setting (database and admin token included), as `hookline up` gives
    its children: what the API, the projector and the replayer need beyond `service_env`."""
    env = child_environment(os.environ, environment(settings))
    env["HOOKLINE_LOG_LEVEL"] = os.environ.get("HOOKLINE_LOG_LEVEL", "WARNING")
    return env


@dataclass(slots=True)
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]

    def check(self) -> None:
        """Raise when the process has exited (the benchmark cannot go on without it)."""
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with {code}; see {self.log.name}")

    def stop(self) -> int:
        """SIGTERM (the services drain and commit), then wait; kill if stuck."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        self.log.close()
        return code


def start_receiver(hang_s: float) -> tuple[Process, str]:
    """The bench receiver in its own process; returns it and its base URL."""
    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    port = free_port()
    popen = subprocess.Popen(
        [sys.executable, "-m", "bench.e2e_receiver", "--port", str(port), "--hang-s", str(hang_s)],
        stdout=subprocess.PIPE,
    )
    assert popen.stdout is not None
    line = popen.stdout.readline().decode()
    if "listening" not in line:
        popen.kill()
        raise RuntimeError(f"the bench receiver did not start: {line!r}")
    return Process("receiver", popen, popen.stdout), f"http://127.0.0.1:{port}"


def start_service(
    command: str,
    settings: Settings,
    name: str,
    *,
    profile_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Process, int]:
    """`hookline <command>` with a metrics port (the API: its own port, which serves its
    metrics); returns it and the port. `env` defaults to `service_env(settings)`."""
    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # the console script: `python -m hookline.app.cli` would register sub-commands in a second
    # copy of the module, not in the `__main__` that parses the arguments
    argv = [sys.executable, str(HOOKLINE_SCRIPT)]
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        html = str(profile_dir / f"{name}.html")
        argv = [sys.executable, "-m", "pyinstrument", "-r", "html", "-o", html, *argv[1:]]
    argv += [command, "--api-port" if command == "api" else "--metrics-port", str(port)]
    log = (LOGS_DIR / f"{settings.topic_prefix}-{name}.log").open("wb")
    popen = subprocess.Popen(
        argv, env=service_env(settings) if env is None else env, stdout=log, stderr=log
    )
    return Process(name, popen, log), port


def wait_ready(process: Process, port: int, timeout_s: float) -> None:
    """Until the service answers 200 on `/readyz` (raises when it exits or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        process.check()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5):
                return
        except OSError:  # not listening yet, or 503 (HTTPError is an OSError)
            time.sleep(0.1)
    raise RuntimeError(f"{process.name} not ready in {timeout_s:g} s; see {process.log.name}")


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - our own receiver
        return orjson.loads(response.read())


def wait_first(
    url: str, kind: str, target: int, timeout_s: float, processes: Sequence[Process] = ()
) -> int:
    """Wait until the receiver has `target` first arrivals of `kind` (or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for process in processes:
            process.check()
        progress = get_json(f"{url}/_bench/progress")
        assert isinstance(progress, dict)
        seen = (
            int(progress["first"].get(kind, 0)) if kind != "*" else sum(progress["first"].values())
        )
        if seen >= target or time.monotonic() > deadline:
            return seen
        time.sleep(0.02)


def dump(url: str) -> dict[str, Row]:
    rows = get_json(f"{url}/_bench/dump")
    assert isinstance(rows, list)
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def metric(port: int, name: str) -> float:
    """One unlabelled sample from a service's Prometheus endpoint (0 when absent)."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


@dataclass(slots=True)
class CounterWatch:
    """Samples a counter every `interval_s` in a thread: (monotonic time, value) pairs.

    Each sample is a whole scrape of the service's `/metrics`, served by a thread of the
    process under measurement: every 50 ms it took a fifth of the router's CPU at 500/s."""

    port: int
    name: str
    interval_s: float = 0.25
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        with contextlib.suppress(OSError):  # a scrape that failed is a sample skipped
            self.samples.append((time.monotonic(), metric(self.port, self.name)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()  # the phase's end, which may fall between two samples

    def rate(self, start_value: float, end_value: float) -> float:
        """Per second, from the first sample above `start_value` to the first at `end_value`."""
        first = next(((t, v) for t, v in self.samples if v > start_value), None)
        last = next(((t, v) for t, v in self.samples if v >= end_value), None)
        if first is None or last is None or last[0] <= first[0]:
            return float("nan")
        # the first sample above start already counts work done since the sample before it
        before = max((s for s in self.samples if s[0] < first[0]), default=first)
        return (last[1] - before[1]) / (last[0] - before[0])


@dataclass(slots=True)
class Pipeline:
    """One scenario's running processes and the first arrivals they are expected to make."""

    url: str
    router_port: int
    processes: list[Process]
    metrics_ports: list[int]  # where each process serves `/metrics`, in order
    kinds: list[str]  # path kind of each subscription
    ok_before: int  # `ok` first arrivals expected so far (the receiver serves every scenario)
    burst_expected: int = 0  # `burst` first arrivals expected once the burst has drained

    def wait(self, published: Published) -> None:
        """Count what `published` sends to each kind; wait for the `ok` first arrivals."""
        sent = Counter(self.kinds[s] for s in published.subs)
        self.burst_expected += sent["burst"]
        self.ok_before = wait_first(
            self.url, "ok", self.ok_before + sent["ok"], WAIT_S, self.processes
        )


def start_pipeline(
    settings: Settings,
    *,
    deliverers: int,
    through_api: bool,
    profile_dir: Path | None,
    url: str,
    kinds: list[str],
    ok_before: int,
) -> Pipeline:
    """The router and the deliverers, each its own process (and, when the events go through
    the API, the API's three processes: the whole platform as `hookline up` runs it)."""
    services = [("router", "router")]
    services += [("deliverer", f"deliverer-{i}") for i in range(deliverers)]
    env = None
    if through_api:
        services += [("projector", "projector"), ("replayer", "replayer"), ("api", "api")]
        env = platform_env(settings)
    started = [
        start_service(command, settings, name, profile_dir=profile_dir, env=env)
        for command, name in services
    ]
    processes, ports = [p for p, _ in started], [port for _, port in started]
    return Pipeline(url, ports[0], processes, ports, kinds, ok_before)


def api_source(
    settings: Settings, pipeline: Pipeline, subscriptions: int, clients: int
) -> ApiSource:
    """Clients of the pipeline's API (the last process started), once it is ready."""
    api, port = pipeline.processes[-1], pipeline.metrics_ports[-1]
    wait_ready(api, port, WAIT_S)
    assert settings.admin_token is not None
    return ApiSource(f"http://127.0.0.1:{port}", settings.admin_token.value, subscriptions, clients)
