"""The supervisor of `hookline up`'s processes, driven with tiny Python children instead of
services (each starts in a few tens of milliseconds): a child that keeps dying stops it, a
child's start-up mistake is its one line, and a child that ignores SIGTERM is killed."""

from __future__ import annotations

import logging
import sys

import pytest

from hookline.app.processes import Address, Child, ProcessSupervisor, ServiceFailed
from hookline.app.restarts import RestartPolicy

QUICK = RestartPolicy(first_delay_s=0.01, max_delay_s=0.05, max_deaths=3, window_s=60.0)
SERVES = 'print("{name} ready: metrics on 127.0.0.1:{port}", flush=True)'
FOREVER = "import time\nwhile True: time.sleep(1)"


def _child(name: str, code: str) -> Child:
    return Child(name, (sys.executable, "-c", code), {}, port_variable="HOOKLINE_METRICS_PORT")


def test_a_child_that_keeps_dying_is_restarted_then_given_up_on(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    dying = _child(
        "router",
        SERVES.format(name="router", port=9101) + "\nimport sys; print('oops', file=sys.stderr)"
        "\nsys.exit(3)",
    )
    supervisor = ProcessSupervisor([dying], policy=QUICK)
    with caplog.at_level(logging.WARNING, logger="hookline.app.processes"):
        supervisor.start()
        supervisor.wait_ready(30)
        assert supervisor.address("router") == Address("127.0.0.1", 9101)
        supervisor.supervise()  # returns once it gives up
        stopped = supervisor.stop(5)
    assert stopped.killed == ()
    failure = supervisor.failure
    assert isinstance(failure, ServiceFailed)
    assert str(failure) == "router: exited 3 times within 60 s (last: exit code 3)"
    messages = [record.getMessage() for record in caplog.records]
    assert messages[:2] == [
        "router exited (exit code 3); restarting it in 0.01 s",
        "router is ready again, at 127.0.0.1:9101",
    ]
    assert "router exited (exit code 3); restarting it in 0.02 s" in messages
    assert dying.env == {"HOOKLINE_METRICS_PORT": "9101"}  # a restart keeps its port
    assert capsys.readouterr().err.splitlines() == ["oops"] * 3  # each death's last words


def test_a_mistake_before_ready_is_the_childs_one_line_and_stops_the_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    serving = _child("projector", SERVES.format(name="projector", port=9103) + "\n" + FOREVER)
    mistaken = _child(
        "api",
        "import sys\nprint('WARNING coordinator loading', file=sys.stderr)"
        "\nprint('hookline api: port 8080 on 127.0.0.1 is already in use', file=sys.stderr)"
        "\nsys.exit(2)",
    )
    supervisor = ProcessSupervisor([serving, mistaken], policy=QUICK)
    supervisor.start()
    with pytest.raises(ServiceFailed) as raised:
        supervisor.wait_ready(30)
    assert str(raised.value) == "api: port 8080 on 127.0.0.1 is already in use"
    assert serving.process is not None
    assert serving.process.returncode is not None  # stopped, not left running
    assert capsys.readouterr().err == ""  # the held start-up output is not repeated


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    stubborn = _child(
        "deliverer",
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        + SERVES.format(name="deliverer", port=9102)
        + "\n"
        + FOREVER,
    )
    supervisor = ProcessSupervisor([stubborn], policy=QUICK)
    supervisor.start()
    supervisor.wait_ready(30)
    supervisor.request_stop()
    supervisor.supervise()  # returns at once: a stop was asked for
    stopped = supervisor.stop(0.5)
    assert stopped.killed == ("deliverer",)
    assert stubborn.process is not None
    assert stubborn.process.returncode == -9
