"""Kafka client security: the settings, their one-line refusals, and every client's config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from hookline.runtime.errors import KafkaAuthenticationFailed, SettingsError
from hookline.runtime.kafka import (
    admin_config,
    consumer_config,
    error_reporter,
    producer_config,
    reader_config,
)
from hookline.runtime.kafka_properties import (
    bundled_table,
    known_properties,
    render_properties,
)
from hookline.runtime.settings import Settings

SCRAM = {
    "HOOKLINE_KAFKA_BOOTSTRAP": "broker:9093",
    "HOOKLINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "HOOKLINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "HOOKLINE_KAFKA_SASL_USERNAME": "hookline",
    "HOOKLINE_KAFKA_SASL_PASSWORD": "hunter2-scram",
}

BUILDERS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "producer": lambda s: producer_config(s, client_id="p"),
    "transactional producer": lambda s: producer_config(s, client_id="t", transactional_id="t"),
    "consumer": lambda s: consumer_config(s, group_id="g", client_id="c"),
    "reader": lambda s: reader_config(s, client_id="r"),
    "admin": admin_config,
}


@pytest.fixture
def pem(tmp_path: Path) -> Callable[[str], str]:
    def make(name: str) -> str:
        path = tmp_path / name
        path.write_text("-----BEGIN CERTIFICATE-----\n")
        return str(path)

    return make


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_every_client_carries_the_security_settings(
    build: Callable[[Settings], dict[str, Any]], pem: Callable[[str], str]
) -> None:
    settings = Settings.load(
        environ=SCRAM
        | {
            "HOOKLINE_KAFKA_SSL_CA_LOCATION": pem("ca.pem"),
            "HOOKLINE_KAFKA_CONFIG": "debug=security",
        }
    )
    config = build(settings)
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "hookline"
    assert config["sasl.password"] == "hunter2-scram"
    assert config["ssl.ca.location"] == pem("ca.pem")
    assert config["debug"] == "security"


def test_a_plaintext_client_sets_no_tls_or_sasl_property() -> None:
    config = producer_config(
        Settings.load(environ={"HOOKLINE_KAFKA_BOOTSTRAP": "b:1"}), client_id="p"
    )
    assert config["security.protocol"] == "PLAINTEXT"
    assert not [name for name in config if name.startswith(("sasl.", "ssl."))]


def test_mtls_passes_the_client_certificate_and_key(pem: Callable[[str], str]) -> None:
    settings = Settings.load(
        environ={
            "HOOKLINE_KAFKA_BOOTSTRAP": "b:1",
            "HOOKLINE_KAFKA_SECURITY_PROTOCOL": "ssl",
            "HOOKLINE_KAFKA_SSL_CERTIFICATE_LOCATION": pem("client.pem"),
            "HOOKLINE_KAFKA_SSL_KEY_LOCATION": pem("client.key"),
            "HOOKLINE_KAFKA_SSL_KEY_PASSWORD": "key-pass",
        }
    )
    config = admin_config(settings)
    assert config["security.protocol"] == "SSL"
    assert config["ssl.certificate.location"] == pem("client.pem")
    assert config["ssl.key.location"] == pem("client.key")
    assert config["ssl.key.password"] == "key-pass"


def test_oauthbearer_uses_librdkafkas_oidc_client_credentials() -> None:
    settings = Settings.load(
        environ={
            "HOOKLINE_KAFKA_BOOTSTRAP": "b:1",
            "HOOKLINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "HOOKLINE_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "HOOKLINE_KAFKA_SASL_OAUTHBEARER_CLIENT_ID": "hookline-app",
            "HOOKLINE_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET": "oidc-secret",
            "HOOKLINE_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": "https://idp.example/token",
            "HOOKLINE_KAFKA_SASL_OAUTHBEARER_SCOPE": "kafka",
        }
    )
    config = consumer_config(settings, group_id="g", client_id="c")
    assert config["sasl.oauthbearer.method"] == "oidc"
    assert config["sasl.oauthbearer.client.id"] == "hookline-app"
    assert config["sasl.oauthbearer.client.secret"] == "oidc-secret"
    assert config["sasl.oauthbearer.token.endpoint.url"] == "https://idp.example/token"
    assert config["sasl.oauthbearer.scope"] == "kafka"
    assert "oidc-secret" not in repr(settings)


def test_credentials_are_masked_when_printed(pem: Callable[[str], str]) -> None:
    settings = Settings.load(
        environ=SCRAM
        | {
            "HOOKLINE_KAFKA_SSL_CERTIFICATE_LOCATION": pem("c.pem"),
            "HOOKLINE_KAFKA_SSL_KEY_LOCATION": pem("c.key"),
            "HOOKLINE_KAFKA_SSL_KEY_PASSWORD": "key-pass-secret",
            "HOOKLINE_KAFKA_CONFIG": "ssl.keystore.password=keystore-secret",
        }
    )
    shown = repr(settings) + str(settings)
    for secret in ("hunter2-scram", "key-pass-secret", "keystore-secret"):
        assert secret not in shown
    assert "ssl.keystore.password=****" in shown


def test_extra_properties_go_only_to_the_clients_they_apply_to() -> None:
    settings = Settings.load(
        environ={
            "HOOKLINE_KAFKA_BOOTSTRAP": "b:1",
            "HOOKLINE_KAFKA_CONFIG": "linger.ms=50, fetch.wait.max.ms=20,debug=broker\\,security",
        }
    )
    producer = producer_config(settings, client_id="p")
    consumer = consumer_config(settings, group_id="g", client_id="c")
    admin = admin_config(settings)
    assert producer["linger.ms"] == "50"
    assert "fetch.wait.max.ms" not in producer
    assert consumer["fetch.wait.max.ms"] == "20"
    assert "linger.ms" not in consumer
    assert admin["debug"] == "broker,security"
    assert "linger.ms" not in admin


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"HOOKLINE_KAFKA_CONFIG": "fetch.wait.max=20"},
            "HOOKLINE_KAFKA_CONFIG: 'fetch.wait.max' is not a property of librdkafka 2.8.0",
        ),
        (
            {"HOOKLINE_KAFKA_CONFIG": "linger.ms"},
            "HOOKLINE_KAFKA_CONFIG: expected key=value[,key=value...], got 'linger.ms'",
        ),
        (
            {"HOOKLINE_KAFKA_CONFIG": "security.protocol=plaintext"},
            "HOOKLINE_KAFKA_CONFIG: 'security.protocol' has a setting of its own:"
            " set HOOKLINE_KAFKA_SECURITY_PROTOCOL",
        ),
        (
            {"HOOKLINE_KAFKA_CONFIG": "enable.auto.commit=true"},
            "HOOKLINE_KAFKA_CONFIG: 'enable.auto.commit' is set by hookline itself",
        ),
        (
            {"HOOKLINE_KAFKA_CONFIG": "group.instance.id=router-1"},
            "HOOKLINE_KAFKA_CONFIG: 'group.instance.id' is refused: a static member is fenced",
        ),
        (
            {"HOOKLINE_KAFKA_CONFIG": "enable.ssl.certificate.verification=false"},
            "HOOKLINE_KAFKA_CONFIG: 'enable.ssl.certificate.verification' turns off the broker"
            " certificate check (or set HOOKLINE_KAFKA_ALLOW_INSECURE=true)",
        ),
        (
            {"HOOKLINE_KAFKA_CONFIG": "ssl.endpoint.identification.algorithm=NONE"},
            "HOOKLINE_KAFKA_CONFIG: 'ssl.endpoint.identification.algorithm' turns off the check",
        ),
        (
            {"HOOKLINE_KAFKA_SECURITY_PROTOCOL": "TLS"},
            "HOOKLINE_KAFKA_SECURITY_PROTOCOL: expected one of PLAINTEXT, SSL, SASL_PLAINTEXT,"
            " SASL_SSL, got 'TLS'",
        ),
        (
            {"HOOKLINE_KAFKA_SASL_MECHANISM": "GSSAPI"},
            "HOOKLINE_KAFKA_SASL_MECHANISM: expected one of PLAIN, SCRAM-SHA-256",
        ),
        (
            {"HOOKLINE_KAFKA_SECURITY_PROTOCOL": "SSL"},
            "HOOKLINE_KAFKA_SASL_MECHANISM: needs SASL_SSL or SASL_PLAINTEXT, not SSL",
        ),
        (
            {"HOOKLINE_KAFKA_SASL_MECHANISM": ""},  # unset
            "HOOKLINE_KAFKA_SASL_MECHANISM: is required with SASL_SSL",
        ),
        (
            {"HOOKLINE_KAFKA_SASL_PASSWORD": ""},
            "HOOKLINE_KAFKA_SASL_PASSWORD: is required with HOOKLINE_KAFKA_SASL_MECHANISM=SCRAM",
        ),
        (
            {"HOOKLINE_KAFKA_SASL_USERNAME": ""},
            "HOOKLINE_KAFKA_SASL_USERNAME: is required with HOOKLINE_KAFKA_SASL_MECHANISM=SCRAM",
        ),
        (
            {"HOOKLINE_KAFKA_SASL_OAUTHBEARER_CLIENT_ID": "app"},
            "HOOKLINE_KAFKA_SASL_OAUTHBEARER_CLIENT_ID: is used only with"
            " HOOKLINE_KAFKA_SASL_MECHANISM=OAUTHBEARER",
        ),
        (
            {"HOOKLINE_KAFKA_SSL_CA_LOCATION": "/no/such/ca.pem"},
            "HOOKLINE_KAFKA_SSL_CA_LOCATION: no such file: /no/such/ca.pem",
        ),
        (
            {
                "HOOKLINE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "HOOKLINE_KAFKA_SASL_MECHANISM": "PLAIN",
            },
            "HOOKLINE_KAFKA_SECURITY_PROTOCOL: SASL_PLAINTEXT sends the PLAIN credentials in"
            " clear text: use SASL_SSL (or set HOOKLINE_KAFKA_ALLOW_INSECURE=true)",
        ),
        (
            {"HOOKLINE_KAFKA_ALLOW_INSECURE": "maybe"},
            "HOOKLINE_KAFKA_ALLOW_INSECURE: expected true or false, got 'maybe'",
        ),
    ],
)
def test_a_bad_security_setting_is_one_line_naming_it(extra: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ=SCRAM | extra)
    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message
    assert "hunter2" not in message


def test_tls_files_without_tls_are_refused(pem: Callable[[str], str]) -> None:
    with pytest.raises(SettingsError, match=r"^HOOKLINE_KAFKA_SSL_CA_LOCATION: needs SSL or"):
        Settings.load(environ={"HOOKLINE_KAFKA_SSL_CA_LOCATION": pem("ca.pem")})


def test_a_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    der = tmp_path / "ca.der"
    der.write_bytes(b"0\x82\x01\n")
    with pytest.raises(
        SettingsError, match=r"^HOOKLINE_KAFKA_SSL_CA_LOCATION: .* is not a PEM file"
    ):
        Settings.load(environ=SCRAM | {"HOOKLINE_KAFKA_SSL_CA_LOCATION": str(der)})


def test_a_client_certificate_needs_its_key(pem: Callable[[str], str]) -> None:
    with pytest.raises(SettingsError, match=r"^HOOKLINE_KAFKA_SSL_KEY_LOCATION: is required with"):
        Settings.load(
            environ={
                "HOOKLINE_KAFKA_SECURITY_PROTOCOL": "SSL",
                "HOOKLINE_KAFKA_SSL_CERTIFICATE_LOCATION": pem("c.pem"),
            }
        )


def test_the_insecure_override_lets_a_weakening_property_through() -> None:
    settings = Settings.load(
        environ=SCRAM
        | {
            "HOOKLINE_KAFKA_CONFIG": "ssl.endpoint.identification.algorithm=none",
            "HOOKLINE_KAFKA_ALLOW_INSECURE": "true",
        }
    )
    assert admin_config(settings)["ssl.endpoint.identification.algorithm"] == "none"


def test_an_oauth_token_endpoint_over_http_is_refused() -> None:
    with pytest.raises(SettingsError, match="HOOKLINE_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL"):
        Settings.load(
            environ={
                "HOOKLINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "HOOKLINE_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "HOOKLINE_KAFKA_SASL_OAUTHBEARER_CLIENT_ID": "app",
                "HOOKLINE_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET": "s",
                "HOOKLINE_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": "http://idp/token",
            }
        )


def test_a_refused_login_raises_one_line_naming_the_settings() -> None:
    report = error_reporter(Settings.load(environ=SCRAM))
    failure = KafkaError(
        KafkaError._AUTHENTICATION, "SASL authentication error: Authentication failed"
    )
    with pytest.raises(KafkaAuthenticationFailed) as caught:
        report(failure)
    assert str(caught.value).startswith(
        "Kafka refused the login: check HOOKLINE_KAFKA_SASL_USERNAME and"
        " HOOKLINE_KAFKA_SASL_PASSWORD"
    )
    report(KafkaError(KafkaError._TRANSPORT, "broker down"))  # logged, not raised


def test_the_shipped_property_list_matches_the_bundled_librdkafka() -> None:
    """Fails after a confluent-kafka upgrade until `python -m hookline.runtime.kafka_properties`
    regenerates the list."""
    expected = render_properties(bundled_table())
    shipped = (Path(__file__).parents[2] / "hookline/runtime/kafka_properties.txt").read_text()
    assert shipped == expected
    assert "sasl.oauthbearer.extensions" in known_properties()
    assert "error_cb" not in known_properties()  # callbacks cannot be set from a string


def test_every_group_id_starts_with_the_topic_prefix() -> None:
    """Regression: a table reader's group was `<client id>-reader` (`router-…-reader`), out of
    reach of the prefixed group ACL that docs/deploy.md grants."""
    settings = Settings.load(environ={"HOOKLINE_KAFKA_BOOTSTRAP": "b:1"})
    assert reader_config(settings, client_id="router-1-subscriptions")["group.id"] == (
        "hookline.reader.router-1-subscriptions"
    )
