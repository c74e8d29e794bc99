"""The options of the end-to-end benchmark, shared by `hookline bench` and `python -m bench.e2e`.

Only argparse here: every `hookline` command builds every sub-command's parser, so nothing
heavy may be imported.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

SCENARIO_NAMES: Final = ("healthy", "hang", "fail", "two-deliverers", "hostile", "api")
DEFAULT_RATE: Final = 1000.0
CEILING_CONCURRENCIES: Final = (16, 64, 256, 1024)


def positive_int(text: str) -> int:
    """A count of at least 1 (argparse turns the error into one line naming the option)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def rate(text: str) -> float:
    """Events/s: 0 (no paced phase) or more."""
    value = float(text)
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario", choices=[*SCENARIO_NAMES, "all"], action="append", help="default: all"
    )
    parser.add_argument("--events", type=int, default=10_000, help="events per phase")
    parser.add_argument(
        "--rate",
        type=rate,
        action="append",
        help=f"events/s of an open-model phase, repeatable (default {DEFAULT_RATE:g}; 0: none)",
    )
    parser.add_argument("--subscriptions", type=int, default=100)
    parser.add_argument(
        "--clients",
        type=positive_int,
        default=64,
        help="concurrent HTTP clients sending the api scenario's events",
    )
    parser.add_argument(
        "--ceiling-concurrency",
        type=positive_int,
        action="append",
        help="concurrency of a bare client loop measuring the ceiling, repeatable "
        f"(default {' '.join(map(str, CEILING_CONCURRENCIES))}; the best is the ceiling)",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    parser.add_argument(
        "--profile", type=Path, default=None, help="run router and deliverer under pyinstrument"
    )
