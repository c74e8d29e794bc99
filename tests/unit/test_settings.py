"""Settings: every bad value is one clear line naming the setting; secrets never print."""

from __future__ import annotations

import base64
import ipaddress
import secrets
from pathlib import Path

import pytest

from core.secretbox import key_weakness
from hookline.app.credentials import with_local_credentials
from hookline.runtime.errors import SettingsError
from hookline.runtime.settings import Secret, Settings

GOOD_KEY = "VlXYkmvpzZwFIkeIIwjAe3PfT+cFpaZ6YDDpseZexIc="


def test_defaults_follow_the_design() -> None:
    settings = Settings.load(environ={})
    assert settings.kafka_bootstrap is None
    assert settings.api_port == 8080
    assert settings.topic_prefix == "hookline"
    assert settings.topic("dead-letters") == "hookline.dead-letters"
    assert settings.group("router") == "hookline.router"
    assert settings.with_changes(topic_prefix="t1").group("deliverer") == "t1.deliverer"
    assert settings.delivery_timeout_s == 15.0
    assert settings.retry_delays_s == (5, 300, 1800, 7200, 18000, 36000, 36000)


def test_values_are_parsed_from_the_environment() -> None:
    settings = Settings.load(
        environ={
            "HOOKLINE_KAFKA_BOOTSTRAP": "a:9092, b:9093",
            "HOOKLINE_API_PORT": "9000",
            "HOOKLINE_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8,::1/128",
            "HOOKLINE_SECRET_KEY": GOOD_KEY,
            "HOOKLINE_RETRY_DELAYS_S": "0.1,0.2",
        }
    )
    assert settings.kafka_bootstrap == "a:9092,b:9093"
    assert settings.api_port == 9000
    assert settings.allowed_target_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.retry_delays_s == (0.1, 0.2)


def test_flags_win_over_the_environment() -> None:
    settings = Settings.load(environ={"HOOKLINE_API_PORT": "9000"}, overrides={"api_port": "9100"})
    assert settings.api_port == 9100


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("HOOKLINE_API_PORT", "eighty", "HOOKLINE_API_PORT: expected a whole number, got 'eighty'"),
        ("HOOKLINE_API_PORT", "70000", "HOOKLINE_API_PORT: expected a number from 0 to 65535"),
        ("HOOKLINE_KAFKA_BOOTSTRAP", "localhost", "HOOKLINE_KAFKA_BOOTSTRAP: expected host:port"),
        ("HOOKLINE_SECRET_KEY", "not base64!", "HOOKLINE_SECRET_KEY: expected base64"),
        ("HOOKLINE_SECRET_KEY", "c2hvcnQ=", "HOOKLINE_SECRET_KEY: expected base64 of 32 bytes"),
        ("HOOKLINE_ADMIN_TOKEN", "short", "HOOKLINE_ADMIN_TOKEN: must be at least 32"),
        # was accepted: 16 characters passed for the token to every tenant
        ("HOOKLINE_ADMIN_TOKEN", "x" * 31, "HOOKLINE_ADMIN_TOKEN: must be at least 32 characters"),
        ("HOOKLINE_DATABASE_URL", "mysql://x", "HOOKLINE_DATABASE_URL: expected a postgresql://"),
        ("HOOKLINE_TOPIC_PREFIX", "bad prefix", "HOOKLINE_TOPIC_PREFIX: expected letters"),
        (
            "HOOKLINE_ALLOWED_TARGET_NETWORKS",
            "127.0.0.0/8,nonsense",
            "HOOKLINE_ALLOWED_TARGET_NETWORKS: allowed target network 'nonsense' is not a CIDR",
        ),
        # was silently widened to 10.0.0.0/8 by a non-strict parse: host bits are a typo
        (
            "HOOKLINE_ALLOWED_TARGET_NETWORKS",
            "10.1.2.3/8",
            "HOOKLINE_ALLOWED_TARGET_NETWORKS: allowed target network '10.1.2.3/8' is not a CIDR",
        ),
        ("HOOKLINE_DELIVERY_TIMEOUT_S", "-1", "HOOKLINE_DELIVERY_TIMEOUT_S: expected a positive"),
        ("HOOKLINE_LOG_LEVEL", "loud", "HOOKLINE_LOG_LEVEL: expected one of DEBUG, INFO"),
        ("HOOKLINE_LOG_FORMAT", "xml", "HOOKLINE_LOG_FORMAT: expected one of text, json"),
        ("HOOKLINE_INSTANCE_ID", "a b", "HOOKLINE_INSTANCE_ID: expected letters"),
        ("HOOKLINE_OUTBOX_DSN", "mysql://x", "HOOKLINE_OUTBOX_DSN: expected a postgresql://"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting(env: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ={env: value})
    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message
    assert caught.value.name == env


def test_min_insync_above_replication_is_refused() -> None:
    with pytest.raises(SettingsError, match="HOOKLINE_MIN_INSYNC_REPLICAS: 3 exceeds"):
        Settings.load(
            environ={"HOOKLINE_REPLICATION_FACTOR": "2", "HOOKLINE_MIN_INSYNC_REPLICAS": "3"}
        )


def test_secrets_are_masked_when_printed() -> None:
    settings = Settings.load(
        environ={
            "HOOKLINE_ADMIN_TOKEN": "super-secret-token-value-of-32-chars",
            "HOOKLINE_SECRET_KEY": GOOD_KEY,
            "HOOKLINE_DATABASE_URL": "postgresql://u:hunter2@db/x",
        }
    )
    shown = repr(settings) + str(settings)
    assert "super-secret-token-value" not in shown
    assert GOOD_KEY not in shown
    assert "hunter2" not in shown
    assert settings.admin_token is not None
    assert settings.admin_token.value == "super-secret-token-value-of-32-chars"


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.mark.parametrize(
    ("key", "weakness"),
    [
        # regression: an all-zero key was accepted and sealed every signing secret
        (bytes(32), "only 1 different byte values"),
        (b"\xff" * 32, "only 1 different byte values"),
        (bytes(range(15)) * 2 + b"\x00\x01", "only 15 different byte values"),
        (bytes(range(100, 116)) * 2, "a pattern of 16 bytes repeated"),
        (bytes(range(200, 220)) + bytes(range(200, 212)), None),
        (b"correct horse battery staple 123", "printable text, not random bytes"),
    ],
)
def test_a_weak_secret_key_is_refused_in_one_line(key: bytes, weakness: str | None) -> None:
    assert len(key) == 32
    environ = {"HOOKLINE_SECRET_KEY": _b64(key)}
    if weakness is None:
        assert Settings.load(environ=environ).secret_key is not None
        return
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ=environ)
    assert str(caught.value).startswith(f"HOOKLINE_SECRET_KEY: a weak key ({weakness}); ")
    assert "\n" not in str(caught.value)


def test_random_keys_pass_the_weak_key_rule() -> None:
    for _ in range(1000):
        assert key_weakness(secrets.token_bytes(32)) is None


def test_the_generated_local_credentials_pass_the_rules(tmp_path: Path) -> None:
    settings = with_local_credentials(Settings(), tmp_path)
    assert settings.admin_token is not None
    assert settings.secret_key is not None
    loaded = Settings.load(
        environ={
            "HOOKLINE_ADMIN_TOKEN": settings.admin_token.value,
            "HOOKLINE_SECRET_KEY": settings.secret_key.value,
        }
    )
    assert loaded.secret_key == settings.secret_key


def test_require_names_the_missing_setting() -> None:
    with pytest.raises(SettingsError, match="HOOKLINE_ADMIN_TOKEN: is required"):
        Settings.load(environ={}).require("admin_token")


def test_the_settings_once_read_beside_the_settings_object_are_settings_now() -> None:
    settings = Settings.load(
        environ={
            "HOOKLINE_LOG_LEVEL": "info",
            "HOOKLINE_INSTANCE_ID": "router-1",
            "HOOKLINE_OUTBOX_DSN": "postgresql://u:hunter2@db/tasks",
            "HOOKLINE_CACHE_DIR": "/var/cache/hookline",
        }
    )
    assert settings.log_level == "INFO"
    assert settings.instance_id == "router-1"
    assert settings.outbox_dsn is not None
    assert settings.outbox_dsn.value == "postgresql://u:hunter2@db/tasks"
    assert "hunter2" not in repr(settings)
    assert str(settings.cache_dir) == "/var/cache/hookline"


def test_their_defaults() -> None:
    settings = Settings.load(environ={})
    assert settings.log_level == "WARNING"
    assert settings.instance_id is None
    assert settings.outbox_dsn is None
    assert settings.cache_dir.parts[-2:] == (".cache", "hookline")


def test_settings_handed_to_a_child_as_its_environment_read_back_the_same(
    tmp_path: Path,
) -> None:
    """`hookline up` gives its services the settings it resolved through their environment:
    every setting, secrets and floats and lists included, must read back unchanged."""
    import dataclasses

    from hookline.runtime.kafka_properties import parse_client_properties
    from hookline.runtime.settings import environment

    pem = {}
    for name in ("ca", "cert", "key"):
        pem[name] = tmp_path / f"{name}.pem"
        pem[name].write_text(f"-----BEGIN {name.upper()}-----\n-----END {name.upper()}-----\n")
    changed = Settings(
        kafka_bootstrap="a:9092,b:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc-hookline",
        kafka_sasl_password=Secret("pass,word=1"),
        kafka_ssl_ca_location=pem["ca"],
        kafka_ssl_certificate_location=pem["cert"],
        kafka_ssl_key_location=pem["key"],
        kafka_ssl_key_password=Secret("key-pass"),
        kafka_config=parse_client_properties(r"client.rack=rack\,1,socket.keepalive.enable=true"),
        kafka_allow_insecure=True,
        database_url=Secret("postgresql://u:hunter2@db/hookline"),
        admin_token=Secret("t" * 40),
        secret_key=Secret(GOOD_KEY),
        api_host="0.0.0.0",
        api_port=0,
        metrics_host="::1",
        metrics_port=9200,
        topic_prefix="e2e-x",
        partitions=2,
        replication_factor=1,
        min_insync_replicas=1,
        allowed_target_networks=(
            ipaddress.ip_network("127.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
        ),
        data_dir=Path("/srv/hookline-data"),
        cache_dir=Path("/srv/hookline-cache"),
        log_level="DEBUG",
        log_format="json",
        instance_id="router-1",
        outbox_dsn=Secret("postgresql://u:p@db/tasks"),
        delivery_timeout_s=0.1 + 0.2,  # 0.30000000000000004: every digit must survive
        retry_delays_s=(1.0, 2.5, 1 / 3),
        events_retention_ms=120_000,
        disable_after_s=60.0,
        max_in_flight=7,
        lane_concurrency=3,
        max_subscriptions_per_tenant=5,
        max_subscriptions_per_url=2,
        max_custom_headers=1,
        max_custom_header_bytes=100,
        publish_rate_per_s=1.5,
        publish_burst=3,
        ingest_max_lag=0,  # off: a zero must survive too
        api_header_timeout_s=1.25,
        api_body_timeout_s=2.5,
        api_idle_timeout_s=3.75,
        api_max_connections=42,
        event_dedupe_window_s=600.5,
        event_dedupe_max_per_tenant=77,
    )
    oidc = Settings(  # the OAUTHBEARER settings, which exclude a username and password
        kafka_bootstrap="a:9092",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_sasl_oauthbearer_client_id="hookline",
        kafka_sasl_oauthbearer_client_secret=Secret("oidc-secret"),
        kafka_sasl_oauthbearer_token_endpoint_url="https://idp.example/token",
        kafka_sasl_oauthbearer_scope="kafka",
    )
    defaults = Settings()
    same = [
        f.name
        for f in dataclasses.fields(Settings)
        if getattr(changed, f.name) == getattr(defaults, f.name)
        and getattr(oidc, f.name) == getattr(defaults, f.name)
    ]
    assert same == [], "give every setting a value of its own, so each is checked"

    assert Settings.load(environ=environment(changed)) == changed
    assert Settings.load(environ=environment(oidc)) == oidc
    assert Settings.load(environ=environment(defaults)) == defaults
    assert "HOOKLINE_INSTANCE_ID" not in environment(defaults)  # unset stays unset
