"""`hookline bench`: the end-to-end benchmark (bench/e2e.py) on the local stack.

The benchmark's heavy imports wait until `hookline bench` actually runs: every `hookline`
command builds every sub-command's parser.
"""

from __future__ import annotations

import argparse
import sys

from bench.options import add_arguments
from hookline.runtime.commands import Command
from hookline.runtime.settings import Settings


def bench_command(args: argparse.Namespace, settings: Settings) -> int:
    from bench.e2e import run

    return run(args, settings, " ".join(["hookline", *sys.argv[1:]]))


COMMANDS = (
    Command("bench", "the end-to-end benchmark on the local stack", bench_command, add_arguments),
)
