"""`hookline replayer`: runs replay and recover jobs."""

from __future__ import annotations

import argparse

from prometheus_client import CollectorRegistry

from hookline.runtime.commands import Command
from hookline.runtime.settings import Settings
from hookline.runtime.supervisor import run_until_signalled


def replayer_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap", "database_url")
    from api.replayer.service import Replayer

    return run_until_signalled(Replayer(settings, CollectorRegistry()))


COMMANDS = (Command("replayer", "runs replay and recover jobs", replayer_command),)
