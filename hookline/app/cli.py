"""The `hookline` command line: one program, one sub-command per process kind.

Every command is listed here by name, the app's own and each service package's, so
nothing is imported by string and no service imports the app. Every failure a user can
cause ends in one plain line on stderr and exit code 2; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import api.http.cli
import api.projector.cli
import api.replayer.cli
import bench.cli
import deliverer.cli
import producers.cli
import router.cli
from core.errors import HooklineError
from hookline import __version__
from hookline.app import commands, event_types
from hookline.runtime.commands import Command
from hookline.runtime.logs import configure_logging
from hookline.runtime.settings import Settings, flag_name, setting_help, setting_names
from hookline.runtime.tracing import configure_tracing

COMMANDS: tuple[Command, ...] = (
    *commands.COMMANDS,
    *event_types.COMMANDS,
    *producers.cli.COMMANDS,
    *router.cli.COMMANDS,
    *deliverer.cli.COMMANDS,
    *api.http.cli.COMMANDS,
    *api.projector.cli.COMMANDS,
    *api.replayer.cli.COMMANDS,
    *bench.cli.COMMANDS,
)


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each also read from its HOOKLINE_* variable)")
    for name, env in setting_names().items():
        group.add_argument(
            flag_name(name),
            dest=f"setting_{name}",
            metavar=env,
            help=setting_help(name),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookline", description="Webhooks off the log: Kafka in, signed HTTP out."
    )
    parser.add_argument("--version", action="version", version=f"hookline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command_parser = sub.add_parser(command.name, help=command.help)
        command.flags(command_parser)
        _add_setting_flags(command_parser)
    return parser


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return Settings.load(overrides=overrides)


def _one_line(exc: HooklineError) -> str:
    """The message on one line: a wrapped driver's message (psycopg's) can span several."""
    return " ".join(str(exc).split())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = {command.name: command.run for command in COMMANDS}[args.command]
    try:
        settings = _settings_from(args)
        configure_logging(settings)
        provider = configure_tracing(f"hookline-{args.command}")
        try:
            return run(args, settings)
        finally:
            if provider is not None:
                provider.shutdown()  # sends the spans still queued
    except HooklineError as exc:
        print(f"hookline {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
