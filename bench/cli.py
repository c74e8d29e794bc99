"""`hookline bench`: the end-to-end benchmark (bench/e2e.py) on the local stack.

Only argparse here: every `hookline` command builds every sub-command's parser, so the
benchmark's heavy imports wait until `hookline bench` actually runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

from hookline.runtime.commands import Command
from hookline.runtime.settings import Settings

SCENARIO_NAMES: Final = ("healthy", "hang", "fail", "two-deliverers", "hostile")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario", choices=[*SCENARIO_NAMES, "all"], action="append", help="default: all"
    )
    parser.add_argument("--events", type=int, default=10_000, help="events per phase")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="events/s of the open-model phase (0: skip)"
    )
    parser.add_argument("--subscriptions", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    parser.add_argument(
        "--profile", type=Path, default=None, help="run router and deliverer under pyinstrument"
    )


def bench_command(args: argparse.Namespace, settings: Settings) -> int:
    from bench.e2e import run

    return run(args, settings, " ".join(["hookline", *sys.argv[1:]]))


COMMANDS = (
    Command("bench", "the end-to-end benchmark on the local stack", bench_command, add_arguments),
)
