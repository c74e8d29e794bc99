"""The options of the end-to-end benchmark, shared by `hookline bench` and `python -m bench.e2e`.

Only argparse here: every `hookline` command builds every sub-command's parser, so nothing
heavy may be imported.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

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
