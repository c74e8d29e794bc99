"""The process's open-files limit: raised to its ceiling at start, and the share of it the
admin API may fill with client connections, so that the API can never starve the services
that share its process of the sockets they need.
"""

from __future__ import annotations

import logging
import resource
from typing import Final

from hookline.runtime.errors import SettingsError
from hookline.runtime.settings import Settings, env_name

log = logging.getLogger(__name__)

OWN_FILES: Final = 512
"""Descriptors a process needs besides the client connections its API accepts and the
webhooks its deliverer sends: its Kafka clients (a socket per broker and wake-up pipes each),
the PostgreSQL pool, the listening sockets, logs and the interpreter's own. An idle
`hookline up` on a one-broker stack holds about 210; each further broker adds a few per
Kafka client."""

MACOS_OPEN_MAX: Final = 10_240
"""macOS reports an unlimited hard limit but refuses a soft limit above its OPEN_MAX."""


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as far as the system allows); the soft
    limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return soft
    for target in (hard, MACOS_OPEN_MAX):  # the second only where the first is refused
        if target != resource.RLIM_INFINITY and target <= soft:
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        break
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(configured: int, open_files: int, *, reserved: int) -> int:
    """The API's connection cap within `open_files` descriptors, `reserved` of which stay for
    everything else; SettingsError when there is no room left at all."""
    if open_files == resource.RLIM_INFINITY:
        return configured
    room = open_files - reserved
    if room < 1:
        raise SettingsError(
            env_name("api_max_connections"),
            f"the open-files limit {open_files} leaves no room for API connections after the"
            f" {reserved} this process keeps for its other work; raise it (ulimit -n)",
        )
    return min(configured, room)


def within_open_files(settings: Settings, *, reserved: int) -> Settings:
    """`settings` with the API's cap lowered to what the (raised) open-files limit leaves
    after `reserved` descriptors; a warning says so when it had to be lowered."""
    open_files = raise_open_files_limit()
    cap = connection_cap(settings.api_max_connections, open_files, reserved=reserved)
    if cap < settings.api_max_connections:
        log.warning(
            "the API serves at most %d connections, not %s=%d: the open-files limit is %d"
            " and %d of them stay for the rest of the process",
            cap,
            env_name("api_max_connections"),
            settings.api_max_connections,
            open_files,
            reserved,
        )
    return settings.with_changes(api_max_connections=cap)
