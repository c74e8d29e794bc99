"""How a package offers a `hookline` sub-command: its name, help line, flags and run function.

Each service package lists its commands in its `cli` module; the app's command line
(`hookline.app.cli`) imports those lists by name, so the arrow points from the app down to
the services and never back.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from hookline.runtime.settings import Settings

Run = Callable[[argparse.Namespace, Settings], int]
Flags = Callable[[argparse.ArgumentParser], None]


def no_flags(_parser: argparse.ArgumentParser) -> None:
    """A command with only the settings flags every command has."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    run: Run
    flags: Flags = no_flags
