"""Errors of the runtime plumbing, split by what the caller should do.

HooklineError (core.errors)
 ├── SettingsError        a setting is missing or malformed: stop start-up with its one line
 ├── KafkaAuthenticationFailed  the brokers refused the client's credentials: fix the settings
 ├── LocalStackError      the local Kafka or PostgreSQL could not be installed or started
 ├── MetricsPortUnavailable  a service's metrics and health port is taken or not allowed
 ├── TopicError           a topic is missing or has the wrong policy and cannot be fixed here
 ├── ProduceFailed        Kafka refused a record or never acknowledged it: do not move past it
 │    └── ProduceTimeout      the local queue stayed full, or the acknowledgement did not come
 ├── TableError           a table of a compacted topic cannot be read (its topic is missing, its
 │                        reader stopped): the service that keeps the table stops with it
 └── PortTaken            a port this process must listen on is in use: choose another
"""

from __future__ import annotations

from core.errors import HooklineError


class SettingsError(HooklineError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class KafkaAuthenticationFailed(HooklineError):
    """The brokers refused this client's login (a wrong user or password, an expired
    certificate): retrying cannot help, so the process stops with the settings to check."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"Kafka refused the login: check {check} ({reason})")
        self.check = check
        self.reason = reason


class LocalStackError(HooklineError):
    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"local {component}: {reason}")
        self.component = component
        self.reason = reason


class MetricsPortUnavailable(HooklineError):
    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(
            f"cannot serve metrics on {host}:{port}: {reason} (set HOOKLINE_METRICS_PORT)"
        )
        self.host = host
        self.port = port
        self.reason = reason


class TopicError(HooklineError):
    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"topic {topic}: {reason}")
        self.topic = topic
        self.reason = reason


class ProduceFailed(HooklineError):
    """A record Kafka refused, or will never acknowledge: whatever depends on it (an offset,
    a database mark) must not move on; retry the whole step or stop."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"producing to {topic}: {reason}")
        self.topic = topic
        self.reason = reason


class ProduceTimeout(ProduceFailed):
    def __init__(self, topic: str, timeout_s: float, waited_for: str) -> None:
        super().__init__(topic, f"{waited_for} not within {timeout_s:g} s")
        self.timeout_s = timeout_s
        self.waited_for = waited_for


class TableError(HooklineError):
    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"table of {topic}: {reason}")
        self.topic = topic
        self.reason = reason


class PortTaken(HooklineError):
    """A port a server of this process must listen on is in use; `flag` and `variable` say
    how to choose another (`--api-port`, `HOOKLINE_API_PORT`)."""

    def __init__(self, host: str, port: int, *, flag: str, variable: str) -> None:
        super().__init__(
            f"port {port} on {host} is already in use; choose another with {flag} PORT"
            f" or {variable}=PORT"
        )
        self.host = host
        self.port = port
