"""The rules of the Kafka connection settings: the protocols and mechanisms there are, and
the combinations refused at load (ones librdkafka would only refuse at connect, and ones
that would send a credential in clear text or skip a TLS check)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from hookline.runtime.kafka_properties import ClientProperties

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
OAUTH_SETTINGS: Final = (
    "kafka_sasl_oauthbearer_client_id",
    "kafka_sasl_oauthbearer_client_secret",
    "kafka_sasl_oauthbearer_token_endpoint_url",
    "kafka_sasl_oauthbearer_scope",
)
SASL_SETTINGS: Final = ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
TLS_SETTINGS: Final = (
    "kafka_ssl_ca_location",
    "kafka_ssl_certificate_location",
    "kafka_ssl_key_location",
    "kafka_ssl_key_password",
)
# (setting, the setting it needs): a client certificate is useless without its key
TLS_PAIRS: Final = (
    ("kafka_ssl_certificate_location", "kafka_ssl_key_location"),
    ("kafka_ssl_key_location", "kafka_ssl_certificate_location"),
    ("kafka_ssl_key_password", "kafka_ssl_key_location"),
)
_OVERRIDE: Final = " (or set HOOKLINE_KAFKA_ALLOW_INSECURE=true)"


class SecuritySettings(Protocol):
    """The settings these rules read (by name, through `getattr`, for the optional ones)."""

    @property
    def kafka_security_protocol(self) -> str: ...
    @property
    def kafka_sasl_mechanism(self) -> str | None: ...
    @property
    def kafka_sasl_oauthbearer_token_endpoint_url(self) -> str | None: ...
    @property
    def kafka_config(self) -> ClientProperties: ...
    @property
    def kafka_allow_insecure(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    setting: str
    reason: str


def pem_path(text: str) -> Path:
    """A PEM file (or, for CA certificates, a folder of them): librdkafka reads it when a
    client is made, where a bad one would be a stack trace instead of one line."""
    path = Path(text.strip()).expanduser().resolve()
    if not text.strip() or not path.exists():
        raise ValueError(f"no such file: {path}")
    if path.is_file() and b"-----BEGIN " not in path.read_bytes()[:65536]:
        raise ValueError(f"{path} is not a PEM file (no -----BEGIN line)")
    return path


def token_endpoint_url(text: str) -> str:
    text = text.strip()
    if not text.startswith(("https://", "http://")):
        raise ValueError(f"expected an https:// URL, got {text!r}")
    return text


def first_refusal(settings: SecuritySettings, env_name: Callable[[str], str]) -> Refusal | None:
    """The first combination of `settings` to refuse (`env_name` names a setting's variable)."""
    return next(_refusals(settings, env_name), None)


def _refusals(settings: SecuritySettings, env_name: Callable[[str], str]) -> Iterator[Refusal]:
    protocol = settings.kafka_security_protocol
    sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
    mechanism = settings.kafka_sasl_mechanism

    def given(name: str) -> bool:
        return getattr(settings, name) is not None

    if sasl and mechanism is None:
        yield Refusal("kafka_sasl_mechanism", f"is required with {protocol}")
    for name in SASL_SETTINGS if not sasl else ():
        if given(name):
            yield Refusal(name, f"needs SASL_SSL or SASL_PLAINTEXT, not {protocol}")
    oauth = mechanism == "OAUTHBEARER"
    for name in OAUTH_SETTINGS if not oauth else ():
        if given(name):
            yield Refusal(name, "is used only with HOOKLINE_KAFKA_SASL_MECHANISM=OAUTHBEARER")
    needed = OAUTH_SETTINGS[:3] if oauth else SASL_SETTINGS[1:]
    for name in needed if sasl else ():
        if not given(name):
            yield Refusal(name, f"is required with HOOKLINE_KAFKA_SASL_MECHANISM={mechanism}")
    for name in TLS_SETTINGS if not tls else ():
        if given(name):
            yield Refusal(name, f"needs SSL or SASL_SSL, not {protocol}")
    for name, partner in TLS_PAIRS:
        if given(name) and not given(partner):
            yield Refusal(partner, f"is required with {env_name(name)}")
    if not settings.kafka_allow_insecure:
        yield from _insecure(settings, protocol, mechanism)


def _insecure(
    settings: SecuritySettings, protocol: str, mechanism: str | None
) -> Iterator[Refusal]:
    if protocol == "SASL_PLAINTEXT" and mechanism in {"PLAIN", "OAUTHBEARER"}:
        yield Refusal(
            "kafka_security_protocol",
            f"SASL_PLAINTEXT sends the {mechanism} credentials in clear text: use SASL_SSL"
            + _OVERRIDE,
        )
    url = settings.kafka_sasl_oauthbearer_token_endpoint_url
    if url is not None and not url.startswith("https://"):
        yield Refusal(
            "kafka_sasl_oauthbearer_token_endpoint_url",
            "sends the client secret in clear text: use https://" + _OVERRIDE,
        )
    for weak in settings.kafka_config.weakenings():
        yield Refusal("kafka_config", f"{weak.name!r} {weak.reason}" + _OVERRIDE)
