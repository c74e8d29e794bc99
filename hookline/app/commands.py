"""The app's own sub-commands: topics, the local stack, `up`, the event docs and the demo."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from hookline.app.credentials import FILE as CREDENTIALS_FILE
from hookline.app.localstack.kafka import CLUSTER_SIZES
from hookline.app.localstack.secure import MECHANISM, PROTOCOL
from hookline.app.localstack.stack import (
    local_data_dir,
    local_settings,
    stack_status,
    start_stack,
    stop_stack,
)
from hookline.runtime.commands import Command
from hookline.runtime.settings import Settings, env_name
from hookline.runtime.topics import ensure_topics

if TYPE_CHECKING:
    from hookline.app.up import Platform


def topics_command(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap")
    from hookline.app.event_types import register_builtins_command

    report = ensure_topics(settings)
    for name in report.created:
        print(f"created  {name}")
    for name in report.existing:
        print(f"ok       {name}")
    for name in register_builtins_command(settings):
        print(f"registered event type {name} (built-in, version 1)")
    return 0


def stack_command(args: argparse.Namespace, settings: Settings) -> int:
    folder = local_data_dir(settings)
    if args.action == "stop":
        stop_stack(folder)
        print(f"stopped the local stack in {folder}")
        return 0
    if args.action == "status":
        for line in stack_status(folder):
            print(line)
        return 0
    stack = start_stack(
        folder, cache_dir=settings.cache_dir, brokers=args.brokers, secure=bool(args.secure)
    )
    local = local_settings(settings, stack)
    verb = "running" if stack.reused else "started"
    kafka = stack.kafka_bootstrap if stack.secure is None else stack.secure.bootstrap
    print(f"{verb}: kafka {kafka}  postgres {stack.database_url}")
    # replicas as many as the brokers allow, or `topics ensure` fails on a single broker
    exports: dict[str, object] = {
        "kafka_bootstrap": kafka,
        "database_url": stack.database_url,
        "replication_factor": local.replication_factor,
        "min_insync_replicas": local.min_insync_replicas,
        "partitions": local.partitions,
    }
    if stack.secure is not None:
        exports |= {
            "kafka_security_protocol": PROTOCOL,
            "kafka_sasl_mechanism": MECHANISM,
            "kafka_sasl_username": stack.secure.username,
            "kafka_sasl_password": stack.secure.password,
            "kafka_ssl_ca_location": stack.secure.ca_location,
        }
    for name, value in exports.items():
        print(f"export {env_name(name)}={value}")
    return 0


def up_command(args: argparse.Namespace, settings: Settings) -> int:
    from hookline.app.up import (
        check_api_port,
        local_stack_for,
        prepare,
        single_instance,
        start_platform,
        stop_platform,
    )
    from hookline.runtime.supervisor import interrupt_on_sigterm

    interrupt_on_sigterm()
    api = f"http://{settings.api_host}:{settings.api_port}"
    with single_instance(local_data_dir(settings), f"API at {api}"):
        check_api_port(settings)
        try:
            with local_stack_for(settings, keep=bool(args.keep_stack)):
                token_is_local = settings.admin_token is None
                platform = start_platform(prepare(settings))
                platform.supervisor.stop_on_signals()
                _print_banner(platform, token_is_local=token_is_local)
                platform.supervisor.supervise()
                print("stopping: draining in-flight work...", flush=True)
                code = stop_platform(platform)
        except KeyboardInterrupt:  # while starting: what was started is stopped by now
            code = 130
    print("stopped", flush=True)
    return code


def _print_banner(platform: Platform, *, token_is_local: bool) -> None:
    settings = platform.settings
    url = platform.api_url
    token = settings.admin_token.value if settings.admin_token else "(unset)"
    print(f"hookline is up: API at {url}")
    print(f"  admin token   {token}")
    if token_is_local:
        print(f"                (kept in {local_data_dir(settings) / CREDENTIALS_FILE})")
    print(f"  kafka         {settings.kafka_bootstrap}")
    metrics = ", ".join(f"{name} {address}" for name, address in platform.metrics().items())
    print(f"  metrics       {metrics} (the API's on its own port)")
    print(f"  api reference {url}/openapi.json")
    header = f"Authorization: Bearer {token}"
    print(f"  try           curl -H '{header}' {url}/v1/event-types")
    print("Ctrl-C or SIGTERM stops it.", flush=True)


def docs_command(args: argparse.Namespace, settings: Settings) -> int:
    """The live catalog (every registered type and version, examples included) when Kafka
    is configured; with `--shipped`, or without Kafka, the types hookline ships."""
    from hookline.runtime.codecs import open_codec
    from schemas.catalog import load_catalog
    from schemas.docs import render_events_markdown

    target = Path(args.output)
    if args.shipped or settings.kafka_bootstrap is None:
        target.write_text(render_events_markdown(load_catalog()))
    else:
        runtime = open_codec(settings, client_id="hookline-docs", follow_catalog=True)
        try:
            target.write_text(render_events_markdown(runtime.codec.catalog, live=True))
        finally:
            runtime.close()
    print(f"wrote {target}")
    return 0


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import threading

    from hookline.app.demo import Afterwards, demo_settings, run_story
    from hookline.app.up import (
        local_stack_for,
        prepare,
        single_instance,
        start_platform,
        stop_platform,
    )
    from hookline.runtime.supervisor import interrupt_on_sigterm

    interrupt_on_sigterm()
    wanted_port = settings.api_port
    credentials = local_data_dir(settings) / CREDENTIALS_FILE
    token_is_local = settings.admin_token is None
    with (
        single_instance(local_data_dir(settings), "hookline demo"),
        local_stack_for(settings, keep=False) as starting,
    ):
        if starting:
            print("starting a local Kafka and PostgreSQL...", flush=True)
        settings = demo_settings(prepare(settings))
        print(f"kafka     {settings.kafka_bootstrap}   postgres ready")
        platform = start_platform(settings)
        services = "router, deliverer, projector, replayer: a process each"
        print(f"platform  API at {platform.api_url} ({services})")
        moved = wanted_port not in (0, platform.settings.api_port)  # 0: any port was asked
        if moved:
            print(f"          (port {wanted_port} is taken, so the demo took a free one)")
        print("          retries shortened to 1 s, 2 s, 4 s for the demo")
        # where `hookline up` will serve the API and find the token, for the closing commands
        after = Afterwards(
            up_url=f"http://{settings.api_host}:{wanted_port}",
            port_taken=moved,
            credentials=credentials if token_is_local else None,
        )
        # the story's asyncio loop keeps this (the main) thread, where Ctrl-C lands, so the
        # processes are supervised from another: it alone starts their restarts
        supervising = threading.Thread(
            target=platform.supervisor.supervise, name="hookline-supervisor"
        )
        supervising.start()
        try:
            ok = asyncio.run(run_story(platform, after))
        finally:
            platform.supervisor.request_stop()
            supervising.join()
            code = stop_platform(platform)
    return 0 if ok and code == 0 else 1


def _topics_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["ensure"])


def _stack_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument(
        "--brokers",
        type=int,
        choices=CLUSTER_SIZES,
        help="Kafka nodes of a new stack: 3 make one cluster whose topics keep 3 replicas "
        "(default: as many as the data folder was made with, else 1)",
    )
    parser.add_argument(
        "--secure",
        action="store_true",
        help="also a SASL_SSL listener (SCRAM-SHA-512, a local CA); prints how to reach it",
    )


def _up_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-stack",
        action="store_true",
        help="leave the local Kafka and PostgreSQL that `up` started running when it stops",
    )


def _docs_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="docs/events.md")
    parser.add_argument(
        "--shipped",
        action="store_true",
        help="only the types hookline ships (how the repository's docs/events.md is made)",
    )


COMMANDS = (
    Command("topics", "create or check the topics", topics_command, _topics_flags),
    Command("stack", "the local Kafka and PostgreSQL", stack_command, _stack_flags),
    Command("up", "the whole platform, one process per service", up_command, _up_flags),
    Command("docs", "render the event catalog as Markdown", docs_command, _docs_flags),
    Command("demo", "the local platform and the seed's story", demo_command),
)
