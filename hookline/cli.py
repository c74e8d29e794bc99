"""The `hookline` command line: one program, one sub-command per process kind.

Every failure a user can cause ends in one plain line on stderr and exit code 2; tracebacks
are for bugs only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hookline import __version__
from hookline.errors import HooklineError
from hookline.settings import Settings, setting_help, setting_names

Command = Callable[[argparse.Namespace, Settings], int]
_COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(func: Command) -> Command:
        _COMMANDS[name] = func
        return func

    return register


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each also read from its HOOKLINE_* variable)")
    for name, env in setting_names().items():
        group.add_argument(
            "--" + name.replace("_", "-"),
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

    topics = sub.add_parser("topics", help="create or check the topics")
    topics.add_argument("action", choices=["ensure"])
    _add_setting_flags(topics)

    stack = sub.add_parser("stack", help="the local Kafka and PostgreSQL")
    stack.add_argument("action", choices=["start", "stop"])
    _add_setting_flags(stack)
    up = sub.add_parser("up", help="the whole platform in one process")
    _add_setting_flags(up)

    docs = sub.add_parser("docs", help="regenerate docs/events.md from schemas/")
    docs.add_argument("--output", default="docs/events.md")
    _add_setting_flags(docs)

    demo = sub.add_parser("demo", help="the local platform and the seed's story")
    _add_setting_flags(demo)
    for name, (help_text, configure) in _PARSERS.items():
        parser_ = sub.add_parser(name, help=help_text)
        configure(parser_)
        _add_setting_flags(parser_)
    return parser


ParserSetup = Callable[[argparse.ArgumentParser], None]
_PARSERS: dict[str, tuple[str, ParserSetup]] = {}


def service_command(
    name: str, help_text: str, configure: ParserSetup = lambda _p: None
) -> Callable[[Command], Command]:
    """Register a sub-command with its own parser (used by the service packages' `cli`)."""

    def register(func: Command) -> Command:
        _PARSERS[name] = (help_text, configure)
        _COMMANDS[name] = func
        return func

    return register


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return Settings.load(overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    _load_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings_from(args)
        return _COMMANDS[args.command](args, settings)
    except HooklineError as exc:
        print(f"hookline {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


SERVICE_PACKAGES = ("producers", "router", "deliverer", "api", "bench")


def _load_commands() -> None:
    """Import the modules that register sub-commands: ours and each service's `cli`."""
    import importlib
    import importlib.util

    importlib.import_module("hookline.commands")
    for package in SERVICE_PACKAGES:
        try:
            found = importlib.util.find_spec(f"{package}.cli")
        except ModuleNotFoundError:  # the package itself is not installed (e.g. bench)
            continue
        if found is not None:
            importlib.import_module(f"{package}.cli")


def local_data_dir(settings: Settings) -> Path:
    return settings.data_dir / "local"


if __name__ == "__main__":
    sys.exit(main())
