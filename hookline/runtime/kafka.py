"""Kafka client configuration, built in one place so every client gets the same guarantees.

Producers always set acks=all and idempotence explicitly (librdkafka defaults idempotence to
off); consumers never auto-commit or auto-store offsets, so an offset is stored only after the
message's outputs are acknowledged. Every client carries the same connection: bootstrap
servers, TLS and SASL from the settings, then the extra `HOOKLINE_KAFKA_CONFIG` properties.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from hookline.runtime.consumer_lag import STATISTICS_INTERVAL_MS, ConsumerLag
from hookline.runtime.errors import KafkaAuthenticationFailed, SettingsError
from hookline.runtime.kafka_properties import Clients
from hookline.runtime.settings import Settings, env_name

T = TypeVar("T")

ClientConfig = dict[str, Any]

# librdkafka's own log lines go to this logger rather than straight to stderr; its errors
# that matter also surface as exceptions and error callbacks where they are handled
LIBRDKAFKA_LOGGER: Final = logging.getLogger("hookline.librdkafka")
_log = logging.getLogger(__name__)


class RepeatFilter(logging.Filter):
    """Lets a line through once per `every_s` (numbers ignored), then says how many it held.

    librdkafka repeats a broker's connection failure every reconnect backoff, from every
    client: a broker restart would otherwise write hundreds of identical lines."""

    _NUMBERS: Final = re.compile(r"\d+")

    def __init__(self, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every_s = every_s
        self._clock = clock
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = self._NUMBERS.sub("#", record.getMessage())
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._every_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if len(self._seen) > 1000:  # bounded: forget everything now and then
            self._seen.clear()
        self._seen[key] = (now, 0)
        if last is not None and last[1]:
            record.msg = f"{record.getMessage()} (and {last[1]} more like it)"
            record.args = None
        return True


LIBRDKAFKA_LOGGER.addFilter(RepeatFilter())


_COMMON: Final[ClientConfig] = {
    "socket.keepalive.enable": True,
    # A hung broker (paused, swapping, cut off by a silent network) answers nothing, and
    # the cluster moves its leaderships and coordinators once its controller fenced it (9 s
    # without a heartbeat, broker.session.timeout.ms). A client finds out from a timeout or
    # a metadata refresh, so these bound how long it keeps waiting on the silent broker:
    # a request times out after 10 s (librdkafka: 60 s; longer than a healthy broker's acks
    # take while it waits for the fenced one to leave the ISR), a connection that is not set
    # up after 5 s is dropped (librdkafka: 30 s; a paused broker's kernel still accepts the
    # TCP connection, so reconnecting to its coordinator waited out this timeout before the
    # coordinator was looked up again), and leaders are refreshed every 2 s (librdkafka:
    # 5 min; one small metadata request per client). Measured on three brokers, one paused
    # for 30 s: delivery resumed after 19-25 s instead of 30-51 s (docs/chaos.md).
    "socket.timeout.ms": 10_000,
    "socket.connection.setup.timeout.ms": 5_000,
    "topic.metadata.refresh.interval.ms": 2_000,
    "reconnect.backoff.max.ms": 2000,
    "log.connection.close": False,
    "logger": LIBRDKAFKA_LOGGER,
}


def bootstrap_servers(settings: Settings) -> str:
    """The Kafka bootstrap servers; a SettingsError naming the variable when unset (a library
    caller, such as a service building a `Publisher`, meets this line, not a KeyError)."""
    if settings.kafka_bootstrap is None:
        raise SettingsError(
            env_name("kafka_bootstrap"), "is not set: Kafka's bootstrap servers, host:port[,...]"
        )
    return settings.kafka_bootstrap


def security_config(settings: Settings) -> ClientConfig:
    """The TLS and SASL properties of every client, from the settings (checked at load)."""
    config: ClientConfig = {"security.protocol": settings.kafka_security_protocol}
    secrets = {
        "sasl.password": settings.kafka_sasl_password,
        "sasl.oauthbearer.client.secret": settings.kafka_sasl_oauthbearer_client_secret,
        "ssl.key.password": settings.kafka_ssl_key_password,
    }
    plain = {
        "sasl.mechanism": settings.kafka_sasl_mechanism,
        "sasl.username": settings.kafka_sasl_username,
        "sasl.oauthbearer.client.id": settings.kafka_sasl_oauthbearer_client_id,
        "sasl.oauthbearer.token.endpoint.url": settings.kafka_sasl_oauthbearer_token_endpoint_url,
        "sasl.oauthbearer.scope": settings.kafka_sasl_oauthbearer_scope,
        "ssl.ca.location": settings.kafka_ssl_ca_location,
        "ssl.certificate.location": settings.kafka_ssl_certificate_location,
        "ssl.key.location": settings.kafka_ssl_key_location,
    }
    config |= {name: str(value) for name, value in plain.items() if value is not None}
    config |= {name: secret.value for name, secret in secrets.items() if secret is not None}
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        config["sasl.oauthbearer.method"] = "oidc"  # librdkafka fetches and renews the token
    return config


def error_reporter(settings: Settings) -> Callable[[KafkaError], None]:
    """librdkafka's error callback. A refused login raises `KafkaAuthenticationFailed` from
    the poll or flush that served it, so a wrong password stops the process at once with a
    line naming the settings to check, instead of being retried until some timeout. Any
    other error is logged as librdkafka logs it when no callback is set."""
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        names = ("kafka_sasl_oauthbearer_client_id", "kafka_sasl_oauthbearer_client_secret")
    else:
        names = ("kafka_sasl_username", "kafka_sasl_password")
    check = " and ".join(env_name(name) for name in names)

    def report(error: KafkaError) -> None:
        if error.code() == KafkaError._AUTHENTICATION:
            raise KafkaAuthenticationFailed(check, error.str())
        LIBRDKAFKA_LOGGER.error("%s", error.str())

    return report


def _connection(settings: Settings) -> ClientConfig:
    return {
        **_COMMON,
        "error_cb": error_reporter(settings),
        "bootstrap.servers": bootstrap_servers(settings),
        **security_config(settings),
    }


def _tuned(config: ClientConfig, settings: Settings, clients: Clients) -> ClientConfig:
    """`config` with the extra `HOOKLINE_KAFKA_CONFIG` properties last, so they tune what
    hookline chose (the properties its guarantees rest on are refused at load)."""
    return config | settings.kafka_config.for_clients(clients)


def producer_config(
    settings: Settings,
    *,
    client_id: str,
    transactional_id: str | None = None,
    linger_ms: int = 5,
) -> ClientConfig:
    config: ClientConfig = {
        **_connection(settings),
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": linger_ms,
        "compression.type": "lz4",
        "message.timeout.ms": 120_000,
    }
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = 60_000
        # librdkafka refuses a message timeout longer than the transaction timeout
        config["message.timeout.ms"] = 60_000
        # Right after a commit the coordinator is still writing its markers, so the next
        # transaction's AddPartitionsToTxn/AddOffsetsToTxn is answered CONCURRENT_TRANSACTIONS
        # and retried after retry.backoff.ms: 100 ms by default, on every back-to-back
        # transaction (the Java client shortened this case to 20 ms, KAFKA-5477). Measured
        # on the local broker (`bench.transactions`, back to back): a whole transaction's
        # median 98 ms at 100, 12.3 ms at 10, 7.8 ms at 2, 3.1 ms at 1, librdkafka's least.
        # The backoff still doubles up to retry.backoff.max.ms on real failures.
        config["retry.backoff.ms"] = 1
    return _tuned(config, settings, Clients.PRODUCER)


def consumer_config(
    settings: Settings,
    *,
    group_id: str,
    client_id: str,
    read_committed: bool = True,
    lag: ConsumerLag | None = None,
    batched: bool = False,
) -> ClientConfig:
    """`batched` is for a consumer whose records are not on a webhook's way (the
    projector): its fetches wait for 64 KiB or 100 ms, not for the first record, so under
    load it asks the broker a few times a second instead of once per record batch.

    Members are dynamic: a static member (`group.instance.id`) whose group coordinator
    moved can be fenced by its own rejoin, a fatal error. The session outlasts a coordinator
    lost with its broker (fenced after 9 s, found again within ~15 s, see `_COMMON`), so
    the member keeps its partitions instead of rejoining, which costs a rebalance and the
    wait for its old membership to expire; a crashed consumer's partitions move after it.
    `lag` is the gauge the consumer's statistics keep current (read in its own poll, no
    request of its own)."""
    config: ClientConfig = {
        **_connection(settings),
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 20_000,
        "heartbeat.interval.ms": 2_000,
        "max.poll.interval.ms": 300_000,
    }
    if batched:
        config["fetch.wait.max.ms"] = 100
        config["fetch.min.bytes"] = 64 * 1024
    if lag is not None:
        config["statistics.interval.ms"] = STATISTICS_INTERVAL_MS
        config["stats_cb"] = lag.hook(group_id, read_committed=read_committed)
    return _tuned(config, settings, Clients.CONSUMER)


def reader_config(settings: Settings, *, client_id: str) -> ClientConfig:
    """A group-less reader for tables built from compacted topics (assign, never subscribe).

    librdkafka still wants a group id, and may look up its coordinator: it starts with the
    topic prefix, so one prefixed group ACL covers every group hookline names."""
    config: ClientConfig = {
        **_connection(settings),
        "group.id": f"{settings.topic_prefix}.reader.{client_id}",
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    return _tuned(config, settings, Clients.CONSUMER)


def admin_config(settings: Settings) -> ClientConfig:
    return _tuned(_connection(settings), settings, Clients.ALL)


LOGIN_CHECK_S: Final = 10.0


def check_login(settings: Settings, *, timeout_s: float = LOGIN_CHECK_S) -> None:
    """Raise `KafkaAuthenticationFailed` when the brokers refuse this process's SASL login.

    Metadata requests (a table's first read, listing topics) do not serve librdkafka's
    callbacks, so a wrong password would reach them only as transport errors, waited out as
    a broker outage for minutes. This asks for metadata in short tries and serves the error
    callback between them; it returns once a request succeeds, or after `timeout_s` (a
    broker that does not answer is for the caller to wait for, as before)."""
    if settings.kafka_sasl_mechanism is None:
        return
    admin = AdminClient(admin_config(settings))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=1.0)
        except KafkaException:
            admin.poll(0)  # a refused login raises here, from the error callback
            if time.monotonic() >= deadline:
                return
        else:
            return


# Errors of a broker that is restarting, paused or electing leaders: a request repeated a
# little later succeeds. librdkafka marks only some of them retriable.
_TRANSIENT_CODES: Final = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._TIMED_OUT_QUEUE,  # a request that waited out its time in librdkafka's queue
        KafkaError._WAIT_COORD,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._NOENT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.BROKER_NOT_AVAILABLE,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.OFFSET_NOT_AVAILABLE,
        KafkaError.FENCED_LEADER_EPOCH,
        KafkaError.UNKNOWN_LEADER_EPOCH,
    }
)
TRANSIENT_PATIENCE_S: Final = 120.0


def is_transient(error: KafkaError) -> bool:
    """Whether `error` is one a recovering broker gives: worth asking again shortly."""
    return not error.fatal() and (error.retriable() or error.code() in _TRANSIENT_CODES)


def _transient_exception(exc: BaseException) -> bool:
    return (
        isinstance(exc, KafkaException)
        and isinstance(exc.args[0], KafkaError)
        and is_transient(exc.args[0])
    )


def retry_transient(
    call: Callable[[], T], *, what: str, patience_s: float = TRANSIENT_PATIENCE_S
) -> T:
    """`call()`, repeated (with backoff, for up to `patience_s`) while it fails with a
    transient Kafka error, so a process started while the broker recovers waits for it
    instead of exiting. Any other error, or a transient one past the patience, is raised."""
    retrying = Retrying(
        retry=retry_if_exception(_transient_exception),
        stop=stop_after_delay(patience_s),
        wait=wait_exponential(multiplier=0.1, max=2.0),
        before_sleep=lambda state: _log.warning(
            "waiting for the broker (%s): %s",
            what,
            state.outcome.exception() if state.outcome is not None else "?",
        ),
        reraise=True,
    )
    return retrying(call)
