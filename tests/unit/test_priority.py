"""A service off the webhooks' way lowers its own CPU priority, in its own process."""

from __future__ import annotations

import subprocess
import sys

from hookline.runtime.priority import OFF_PATH_NICENESS

PROBE = """
import os
from hookline.runtime.priority import yield_cpu_to_webhooks
before = os.nice(0)
yield_cpu_to_webhooks()
print(before, os.nice(0))
"""


def test_the_process_yields_the_cpu_by_the_off_path_niceness() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    before, after = (int(n) for n in out.split())
    assert after == min(19, before + OFF_PATH_NICENESS)
