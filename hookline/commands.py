"""The sub-commands of `hookline` that manage infrastructure: topics and the local stack."""

from __future__ import annotations

import argparse
from pathlib import Path

from hookline.cli import command, local_data_dir
from hookline.localstack.stack import local_settings, start_stack, stop_stack
from hookline.settings import Settings
from hookline.topics import ensure_topics


def resolve_infrastructure(settings: Settings) -> Settings:
    """Settings with Kafka and PostgreSQL filled in, starting the local stack for what is unset."""
    if settings.kafka_bootstrap is not None and settings.database_url is not None:
        return settings
    stack = start_stack(local_data_dir(settings))
    local = local_settings(settings, stack)
    return local.with_changes(
        kafka_bootstrap=settings.kafka_bootstrap or local.kafka_bootstrap,
        database_url=settings.database_url or local.database_url,
    )


@command("topics")
def topics_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap")
    report = ensure_topics(settings)
    for name in report.created:
        print(f"created  {name}")
    for name in report.existing:
        print(f"ok       {name}")
    return 0


@command("stack")
def stack_command(args: argparse.Namespace, settings: Settings) -> int:
    folder = local_data_dir(settings)
    if args.action == "stop":
        stop_stack(folder)
        print(f"stopped the local stack in {folder}")
        return 0
    stack = start_stack(folder)
    verb = "running" if stack.reused else "started"
    print(f"{verb}: kafka {stack.kafka_bootstrap}  postgres {stack.database_url}")
    print(f"export HOOKLINE_KAFKA_BOOTSTRAP={stack.kafka_bootstrap}")
    print(f"export HOOKLINE_DATABASE_URL={stack.database_url}")
    return 0


@command("docs")
def docs_command(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.catalog import load_catalog
    from schemas.docs import render_events_markdown

    target = Path(args.output)
    target.write_text(render_events_markdown(load_catalog()))
    print(f"wrote {target}")
    return 0


@command("demo")
def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    settings = resolve_infrastructure(settings)
    print(f"kafka     {settings.kafka_bootstrap}")
    print("postgres  ready")
    report = ensure_topics(settings)
    print(f"topics    {len(report.created)} created, {len(report.existing)} already there")
    return 0
