"""The app's own sub-commands: topics, the local stack, `up`, the event docs and the demo."""

from __future__ import annotations

import argparse
from pathlib import Path

from hookline.app.localstack.stack import local_settings, start_stack, stop_stack
from hookline.runtime.commands import Command
from hookline.runtime.settings import Settings
from hookline.runtime.topics import ensure_topics


def local_data_dir(settings: Settings) -> Path:
    return settings.data_dir / "local"


def resolve_infrastructure(settings: Settings) -> Settings:
    """Settings with Kafka and PostgreSQL filled in, starting the local stack for what is unset."""
    if settings.kafka_bootstrap is not None and settings.database_url is not None:
        return settings
    stack = start_stack(local_data_dir(settings), cache_dir=settings.cache_dir)
    local = local_settings(settings, stack)
    return local.with_changes(
        kafka_bootstrap=settings.kafka_bootstrap or local.kafka_bootstrap,
        database_url=settings.database_url or local.database_url,
    )


def topics_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap")
    report = ensure_topics(settings)
    for name in report.created:
        print(f"created  {name}")
    for name in report.existing:
        print(f"ok       {name}")
    return 0


def stack_command(args: argparse.Namespace, settings: Settings) -> int:
    folder = local_data_dir(settings)
    if args.action == "stop":
        stop_stack(folder)
        print(f"stopped the local stack in {folder}")
        return 0
    stack = start_stack(folder, cache_dir=settings.cache_dir)
    verb = "running" if stack.reused else "started"
    print(f"{verb}: kafka {stack.kafka_bootstrap}  postgres {stack.database_url}")
    print(f"export HOOKLINE_KAFKA_BOOTSTRAP={stack.kafka_bootstrap}")
    print(f"export HOOKLINE_DATABASE_URL={stack.database_url}")
    return 0


def up_command(args: argparse.Namespace, settings: Settings) -> int:
    from hookline.app.up import prepare, single_instance, start_platform, stop_platform
    from hookline.runtime.supervisor import stop_on_signals

    api = f"http://{settings.api_host}:{settings.api_port}"
    with single_instance(local_data_dir(settings), f"API at {api}"):
        settings = prepare(settings)
        platform = start_platform(settings)
        stop_on_signals(platform.supervisor.stopping)
        token = settings.admin_token.value if settings.admin_token else "(unset)"
        print(f"hookline is up: API at {platform.api_url}")
        print(f"  admin token   {token}")
        print(f"  kafka         {settings.kafka_bootstrap}")
        header = f"Authorization: Bearer {token}"
        print(f"  try           curl -H '{header}' {platform.api_url}/v1/event-types")
        print("Ctrl-C or SIGTERM stops it.", flush=True)
        platform.supervisor.stopping.wait()
        print("stopping: draining in-flight work...", flush=True)
        return stop_platform(platform)


def docs_command(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.catalog import load_catalog
    from schemas.docs import render_events_markdown

    target = Path(args.output)
    target.write_text(render_events_markdown(load_catalog()))
    print(f"wrote {target}")
    return 0


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from hookline.app.demo import demo_settings, run_story
    from hookline.app.up import prepare, single_instance, start_platform, stop_platform

    folder = local_data_dir(settings)
    started_stack = settings.kafka_bootstrap is None and not _stack_running(folder)
    try:
        with single_instance(folder, "hookline demo"):
            if started_stack:
                print("starting a local Kafka and PostgreSQL...", flush=True)
            settings = demo_settings(prepare(settings))
            print(f"kafka     {settings.kafka_bootstrap}   postgres ready")
            platform = start_platform(settings)
            print(f"platform  API at {platform.api_url} (router, deliverer, projector, replayer)")
            print("          retries shortened to 1 s, 2 s, 4 s for the demo")
            try:
                ok = asyncio.run(run_story(platform))
            finally:
                code = stop_platform(platform)
    finally:
        if started_stack:
            stop_stack(folder)
    return 0 if ok and code == 0 else 1


def _stack_running(folder: Path) -> bool:
    from hookline.app.localstack.process import pid_alive, read_state

    state = read_state(folder / "kafka" / "state.json")
    return state is not None and pid_alive(int(state["pid"]))


def _topics_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["ensure"])


def _stack_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop"])


def _docs_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="docs/events.md")


COMMANDS = (
    Command("topics", "create or check the topics", topics_command, _topics_flags),
    Command("stack", "the local Kafka and PostgreSQL", stack_command, _stack_flags),
    Command("up", "the whole platform in one process", up_command),
    Command("docs", "regenerate docs/events.md from schemas/", docs_command, _docs_flags),
    Command("demo", "the local platform and the seed's story", demo_command),
)
