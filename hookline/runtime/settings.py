"""The one settings object of a hookline process: read once from the environment and flags.

Every setting has an environment name (`HOOKLINE_*`) and a matching flag (`--kafka-bootstrap`).
A bad value stops start-up with one line naming the setting; secrets never print.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Generic, Literal, TypeVar

from core.addresses import IPNetwork, parse_allowed_networks
from core.secretbox import KEY_BYTES, key_weakness
from hookline.runtime.errors import SettingsError
from hookline.runtime.kafka_properties import ClientProperties, parse_client_properties
from hookline.runtime.kafka_security import (
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
    first_refusal,
    pem_path,
    token_endpoint_url,
)

T = TypeVar("T")

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS: Final = ("text", "json")
# the admin token opens every tenant: at least as long as 24 random bytes in base64
# (hookline up generates 52 characters)
MIN_TOKEN_CHARS: Final = 32


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret string that prints masked."""

    value: str

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class _Spec(Generic[T]):
    env: str
    parse: Callable[[str], T]
    help: str


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    return value


def _non_empty(text: str) -> str:
    text = text.strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _bootstrap(text: str) -> str:
    servers = [s.strip() for s in text.split(",") if s.strip()]
    if not servers:
        raise ValueError("expected host:port[,host:port...]")
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected host:port, got {server!r}")
    return ",".join(servers)


def _database_url(text: str) -> Secret:
    text = text.strip()
    if not text.startswith(("postgresql://", "postgres://", "host=", "dbname=")):
        raise ValueError("expected a postgresql:// URL or a libpq connection string")
    return Secret(text)


def _token(text: str) -> Secret:
    text = text.strip()
    if len(text) < MIN_TOKEN_CHARS:
        raise ValueError(f"must be at least {MIN_TOKEN_CHARS} characters")
    return Secret(text)


def _secret_key(text: str) -> Secret:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected base64 of 32 random bytes") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"expected base64 of {KEY_BYTES} bytes, got {len(raw)} bytes")
    weakness = key_weakness(raw)
    if weakness is not None:
        raise ValueError(
            f"a weak key ({weakness}); use 32 random bytes, e.g. `openssl rand -base64 32`"
        )
    return Secret(text.strip())


def _name(text: str) -> str:
    """A name that goes into topic, group or transactional ids."""
    text = text.strip()
    if not text or not all(c.isalnum() or c in "._-" for c in text):
        raise ValueError(f"expected letters, digits, '.', '_' or '-', got {text!r}")
    return text


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level


def _log_format(text: str) -> str:
    form = text.strip().lower()
    if form not in LOG_FORMATS:
        raise ValueError(f"expected one of {', '.join(LOG_FORMATS)}, got {text!r}")
    return form


def _delays(text: str) -> tuple[float, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("expected comma-separated seconds, e.g. 5,300,1800")
    return tuple(_positive_float(p) for p in parts)


def _path(text: str) -> Path:
    return Path(_non_empty(text)).expanduser().resolve()


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().upper()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return value

    return parse


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value not in {"true", "false", "1", "0", "yes", "no"}:
        raise ValueError(f"expected true or false, got {text!r}")
    return value in {"true", "1", "yes"}


def _secret(text: str) -> Secret:
    return Secret(_non_empty(text))


_SPECS: Final[Mapping[str, _Spec[Any]]] = {
    "kafka_bootstrap": _Spec("HOOKLINE_KAFKA_BOOTSTRAP", _bootstrap, "Kafka bootstrap servers"),
    "kafka_security_protocol": _Spec(
        "HOOKLINE_KAFKA_SECURITY_PROTOCOL",
        _one_of(SECURITY_PROTOCOLS),
        f"how clients reach Kafka: {', '.join(SECURITY_PROTOCOLS)}",
    ),
    "kafka_sasl_mechanism": _Spec(
        "HOOKLINE_KAFKA_SASL_MECHANISM",
        _one_of(SASL_MECHANISMS),
        f"SASL mechanism: {', '.join(SASL_MECHANISMS)} (OIDC client credentials)",
    ),
    "kafka_sasl_username": _Spec(
        "HOOKLINE_KAFKA_SASL_USERNAME", _non_empty, "SASL user (PLAIN, SCRAM)"
    ),
    "kafka_sasl_password": _Spec(
        "HOOKLINE_KAFKA_SASL_PASSWORD", _secret, "SASL password (PLAIN, SCRAM)"
    ),
    "kafka_sasl_oauthbearer_client_id": _Spec(
        "HOOKLINE_KAFKA_SASL_OAUTHBEARER_CLIENT_ID", _non_empty, "OIDC client id (OAUTHBEARER)"
    ),
    "kafka_sasl_oauthbearer_client_secret": _Spec(
        "HOOKLINE_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET", _secret, "OIDC client secret"
    ),
    "kafka_sasl_oauthbearer_token_endpoint_url": _Spec(
        "HOOKLINE_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL",
        token_endpoint_url,
        "OIDC token endpoint",
    ),
    "kafka_sasl_oauthbearer_scope": _Spec(
        "HOOKLINE_KAFKA_SASL_OAUTHBEARER_SCOPE", _non_empty, "OIDC scope, when the server needs one"
    ),
    "kafka_ssl_ca_location": _Spec(
        "HOOKLINE_KAFKA_SSL_CA_LOCATION",
        pem_path,
        "CA certificates (PEM) the brokers' certificates are checked with; default: the system's",
    ),
    "kafka_ssl_certificate_location": _Spec(
        "HOOKLINE_KAFKA_SSL_CERTIFICATE_LOCATION", pem_path, "client certificate (PEM, mTLS)"
    ),
    "kafka_ssl_key_location": _Spec(
        "HOOKLINE_KAFKA_SSL_KEY_LOCATION", pem_path, "client private key (PEM, mTLS)"
    ),
    "kafka_ssl_key_password": _Spec(
        "HOOKLINE_KAFKA_SSL_KEY_PASSWORD", _secret, "passphrase of the client private key"
    ),
    "kafka_config": _Spec(
        "HOOKLINE_KAFKA_CONFIG",
        parse_client_properties,
        "extra librdkafka properties of every client, key=value[,key=value...]",
    ),
    "kafka_allow_insecure": _Spec(
        "HOOKLINE_KAFKA_ALLOW_INSECURE",
        _bool,
        "true: accept settings that weaken TLS or send credentials in clear text",
    ),
    "database_url": _Spec("HOOKLINE_DATABASE_URL", _database_url, "PostgreSQL URL"),
    "admin_token": _Spec("HOOKLINE_ADMIN_TOKEN", _token, "admin API bearer token"),
    "secret_key": _Spec("HOOKLINE_SECRET_KEY", _secret_key, "AES-256-GCM key, base64"),
    "api_host": _Spec("HOOKLINE_API_HOST", _non_empty, "address the API listens on"),
    "api_port": _Spec("HOOKLINE_API_PORT", _int_range(0, 65535), "port of the admin API"),
    "metrics_host": _Spec(
        "HOOKLINE_METRICS_HOST",
        _non_empty,
        "address a service's /metrics, /healthz and /readyz listen on (not api; up's services too)",
    ),
    "metrics_port": _Spec(
        "HOOKLINE_METRICS_PORT",
        _int_range(0, 65535),
        "port of a service's /metrics, /healthz and /readyz (0: any free port). Default:"
        " router 9101, deliverer 9102, projector 9103, replayer 9104, outbox-relay 9105",
    ),
    "topic_prefix": _Spec("HOOKLINE_TOPIC_PREFIX", _name, "prefix of every topic"),
    "partitions": _Spec("HOOKLINE_PARTITIONS", _int_range(1, 10_000), "partitions per topic"),
    "replication_factor": _Spec(
        "HOOKLINE_REPLICATION_FACTOR", _int_range(1, 32), "replication factor of the topics"
    ),
    "min_insync_replicas": _Spec(
        "HOOKLINE_MIN_INSYNC_REPLICAS", _int_range(1, 32), "min.insync.replicas of the topics"
    ),
    "allowed_target_networks": _Spec(
        "HOOKLINE_ALLOWED_TARGET_NETWORKS",
        parse_allowed_networks,
        "CIDRs exempt from the SSRF guard",
    ),
    "data_dir": _Spec("HOOKLINE_DATA_DIR", _path, "folder of the local stack and keys"),
    "cache_dir": _Spec(
        "HOOKLINE_CACHE_DIR", _path, "folder of downloads kept between stacks (Kafka's jars)"
    ),
    "log_level": _Spec(
        "HOOKLINE_LOG_LEVEL", _log_level, "least level logged to stderr (WARNING, INFO, DEBUG...)"
    ),
    "log_format": _Spec(
        "HOOKLINE_LOG_FORMAT", _log_format, "text (one line per record) or json (one object)"
    ),
    "instance_id": _Spec(
        "HOOKLINE_INSTANCE_ID",
        _name,
        "stable name of this router: a restart under the same name fences its predecessor at"
        " once. Default: a random name",
    ),
    "outbox_dsn": _Spec(
        "HOOKLINE_OUTBOX_DSN",
        _database_url,
        "the service database holding the outbox table; default: HOOKLINE_DATABASE_URL",
    ),
    "delivery_timeout_s": _Spec(
        "HOOKLINE_DELIVERY_TIMEOUT_S", _positive_float, "deadline of one delivery attempt"
    ),
    "retry_delays_s": _Spec(
        "HOOKLINE_RETRY_DELAYS_S", _delays, "delays between attempts, seconds, comma-separated"
    ),
    "events_retention_ms": _Spec(
        "HOOKLINE_EVENTS_RETENTION_MS",
        _int_range(60_000, 10 * 365 * 86_400_000),
        "retention of hookline.events: the replay horizon",
    ),
    "disable_after_s": _Spec(
        "HOOKLINE_DISABLE_AFTER_S",
        _positive_float,
        "a subscription with no success for this long is disabled",
    ),
    "max_in_flight": _Spec(
        "HOOKLINE_MAX_IN_FLIGHT", _int_range(1, 1_000_000), "deliveries read ahead per process"
    ),
    "lane_concurrency": _Spec(
        "HOOKLINE_LANE_CONCURRENCY", _int_range(1, 10_000), "concurrent requests per subscription"
    ),
    "max_subscriptions_per_tenant": _Spec(
        "HOOKLINE_MAX_SUBSCRIPTIONS_PER_TENANT",
        _int_range(1, 1_000_000),
        "subscriptions one tenant may hold (every service keeps them all in memory)",
    ),
    "max_subscriptions_per_url": _Spec(
        "HOOKLINE_MAX_SUBSCRIPTIONS_PER_URL",
        _int_range(1, 1_000_000),
        "subscriptions one tenant may hold to one URL: requests one event makes to it",
    ),
    "max_custom_headers": _Spec(
        "HOOKLINE_MAX_CUSTOM_HEADERS", _int_range(0, 50), "custom headers per subscription"
    ),
    "max_custom_header_bytes": _Spec(
        "HOOKLINE_MAX_CUSTOM_HEADER_BYTES",
        _int_range(0, 1024 * 1024),
        "bytes of a subscription's custom header names and values together",
    ),
    "publish_rate_per_s": _Spec(
        "HOOKLINE_PUBLISH_RATE_PER_S",
        _positive_float,
        "events per second one tenant may publish over POST /v1/events, per API process",
    ),
    "publish_burst": _Spec(
        "HOOKLINE_PUBLISH_BURST",
        _int_range(1, 1_000_000),
        "events one tenant may publish at once above its rate, per API process",
    ),
    "ingest_max_lag": _Spec(
        "HOOKLINE_INGEST_MAX_LAG",
        _int_range(0, 1_000_000_000),
        "events not yet routed plus commands the deliverers have not read, beyond which"
        " POST /v1/events refuses (429) the tenants above their fair share, and everyone at"
        " twice it; 0: off",
    ),
    "event_dedupe_window_s": _Spec(
        "HOOKLINE_EVENT_DEDUPE_WINDOW_S",
        _positive_float,
        "an event id published over POST /v1/events is remembered this long: the same"
        " body again is accepted without a second event, another body is refused (409)",
    ),
    "event_dedupe_max_per_tenant": _Spec(
        "HOOKLINE_EVENT_DEDUPE_MAX_PER_TENANT",
        _int_range(1, 100_000_000),
        "event ids remembered per tenant at most; beyond it the oldest are forgotten first",
    ),
    "api_header_timeout_s": _Spec(
        "HOOKLINE_API_HEADER_TIMEOUT_S",
        _positive_float,
        "a new API connection's first request head must be complete within this",
    ),
    "api_body_timeout_s": _Spec(
        "HOOKLINE_API_BODY_TIMEOUT_S", _positive_float, "deadline to read a request body (408)"
    ),
    "api_idle_timeout_s": _Spec(
        "HOOKLINE_API_IDLE_TIMEOUT_S",
        _positive_float,
        "an API keep-alive connection closes when its next request head is not complete by then",
    ),
    "api_max_connections": _Spec(
        "HOOKLINE_API_MAX_CONNECTIONS",
        _int_range(1, 10_000_000),
        "open connections an API process serves; more are answered 503 and closed",
    ),
}

DAY_MS: Final = 86_400_000


Service = Literal["router", "deliverer", "projector", "replayer"]
"""A service that reads its input as a consumer group (`Settings.group`)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of a hookline process. Build it with `Settings.load()`."""

    kafka_bootstrap: str | None = None
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: Secret | None = None
    kafka_sasl_oauthbearer_client_id: str | None = None
    kafka_sasl_oauthbearer_client_secret: Secret | None = None
    kafka_sasl_oauthbearer_token_endpoint_url: str | None = None
    kafka_sasl_oauthbearer_scope: str | None = None
    kafka_ssl_ca_location: Path | None = None
    kafka_ssl_certificate_location: Path | None = None
    kafka_ssl_key_location: Path | None = None
    kafka_ssl_key_password: Secret | None = None
    kafka_config: ClientProperties = field(default_factory=ClientProperties)
    kafka_allow_insecure: bool = False
    database_url: Secret | None = None
    admin_token: Secret | None = None
    secret_key: Secret | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    topic_prefix: str = "hookline"
    partitions: int = 6
    replication_factor: int = 3
    min_insync_replicas: int = 2
    allowed_target_networks: tuple[IPNetwork, ...] = ()
    data_dir: Path = field(default_factory=lambda: Path(".hookline").resolve())
    cache_dir: Path = field(default_factory=lambda: Path("~/.cache/hookline").expanduser())
    log_level: str = "WARNING"
    log_format: str = "text"
    instance_id: str | None = None
    outbox_dsn: Secret | None = None
    delivery_timeout_s: float = 15.0
    retry_delays_s: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    events_retention_ms: int = 30 * DAY_MS
    disable_after_s: float = 5 * 86_400.0
    max_in_flight: int = 10_000
    lane_concurrency: int = 16
    max_subscriptions_per_tenant: int = 1000
    max_subscriptions_per_url: int = 10
    max_custom_headers: int = 20
    max_custom_header_bytes: int = 8192
    publish_rate_per_s: float = 200.0
    publish_burst: int = 400
    ingest_max_lag: int = 20_000
    event_dedupe_window_s: float = 86_400.0
    event_dedupe_max_per_tenant: int = 100_000
    api_header_timeout_s: float = 10.0
    api_body_timeout_s: float = 30.0
    api_idle_timeout_s: float = 30.0
    api_max_connections: int = 4096

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, str | None] | None = None,
    ) -> Settings:
        """Read the environment (and flag `overrides`, which win), validating every value.

        Raises SettingsError with one line naming the first bad setting.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, spec in _SPECS.items():
            raw = (overrides or {}).get(name)
            if raw is None:
                raw = env.get(spec.env)
            if raw is None or raw == "":
                continue
            try:
                values[name] = spec.parse(raw)
            except ValueError as exc:
                raise SettingsError(spec.env, str(exc)) from None
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        if self.min_insync_replicas > self.replication_factor:
            raise SettingsError(
                "HOOKLINE_MIN_INSYNC_REPLICAS",
                f"{self.min_insync_replicas} exceeds the replication factor "
                f"{self.replication_factor}",
            )
        refusal = first_refusal(self, env_name)
        if refusal is not None:
            raise SettingsError(env_name(refusal.setting), refusal.reason)

    def with_changes(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def require(self, *names: str) -> None:
        """Stop a single service that lacks a setting it cannot run without."""
        for name in names:
            if getattr(self, name) is None:
                raise SettingsError(_SPECS[name].env, "is required for this command")

    def topic(self, name: str) -> str:
        """The full name of one of the design's topics, e.g. topic('events')."""
        return f"{self.topic_prefix}.{name}"

    def group(self, service: Service) -> str:
        """The consumer group a service's members share, e.g. group('router'): one place for
        the names that operators, the API's lag probe and the benchmark look up."""
        return f"{self.topic_prefix}.{service}"


def env_name(setting: str) -> str:
    return _SPECS[setting].env


def flag_name(setting: str) -> str:
    """The command-line flag of a setting: `api_port` is `--api-port`."""
    return "--" + setting.replace("_", "-")


def setting_names() -> Mapping[str, str]:
    """Setting name -> environment variable, for flags, docs and the compose check."""
    return {name: spec.env for name, spec in _SPECS.items()}


def setting_help(setting: str) -> str:
    return _SPECS[setting].help


def environment(settings: Settings) -> dict[str, str]:
    """`settings` as the `HOOKLINE_*` variables `Settings.load` reads back to equal settings:
    how a process hands its resolved settings (secrets included) to a child, never on argv.
    Unset and empty settings are left out (an empty variable would not read back)."""
    return {
        spec.env: text
        for name, spec in _SPECS.items()
        if (value := getattr(settings, name)) is not None and (text := _text(value))
    }


def _comma_escaped(text: str) -> str:
    """A `HOOKLINE_KAFKA_CONFIG` value as written in the variable: its commas as `\\,`."""
    return text.replace(",", "\\,")


def _text(value: object) -> str:
    """A setting's value written as its parser reads it."""
    match value:
        case Secret():
            return value.value
        case bool():
            return "true" if value else "false"
        case ClientProperties():
            return ",".join(f"{name}={_comma_escaped(text)}" for name, text in value.items)
        case tuple():
            return ",".join(_text(item) for item in value)
        case _:
            return str(value)
