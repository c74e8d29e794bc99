"""The supervisor of the one-process platform: a failing service stops them all, and a
mistake the user can fix is logged as its one line, a bug with its traceback."""

from __future__ import annotations

import logging
import threading

import pytest

from core.errors import HooklineError
from hookline.runtime.supervisor import Supervisor


class _Failing:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    @property
    def ready(self) -> bool:
        return False

    def run(self, stopping: threading.Event) -> None:
        raise self.error


class _Waiting:
    @property
    def ready(self) -> bool:
        return True

    def run(self, stopping: threading.Event) -> None:
        stopping.wait()


@pytest.mark.parametrize(
    ("error", "traceback"), [(HooklineError("port 8080 is taken"), False), (KeyError("x"), True)]
)
def test_a_failing_service_stops_every_service(
    caplog: pytest.LogCaptureFixture, error: BaseException, traceback: bool
) -> None:
    supervisor = Supervisor([("api", _Failing(error)), ("router", _Waiting())])
    with caplog.at_level(logging.ERROR, logger="hookline.runtime.supervisor"):
        supervisor.start()
        assert supervisor.stopping.wait(10)
        assert supervisor.join(10) == []
    assert supervisor.failures == [("api", error)]
    [record] = caplog.records
    assert record.getMessage().startswith("service api failed")
    assert (record.exc_info is not None) is traceback
