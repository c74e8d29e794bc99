"""The local Kafka's secure listener (`hookline stack start --secure`): SASL_SSL with a
SCRAM-SHA-512 user, and TLS certificates of a local CA made here with `cryptography`.

The broker keeps its PLAINTEXT listeners on 127.0.0.1 for the controller, the other
brokers and the stack's own checks; clients are given the SASL_SSL one, so everything they
do crosses TLS and SCRAM exactly as on a managed cluster.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hookline.runtime.errors import LocalStackError

PROTOCOL: Final = "SASL_SSL"
MECHANISM: Final = "SCRAM-SHA-512"
USERNAME: Final = "hookline"
SCRAM_ITERATIONS: Final = 8192
CERTIFICATE_DAYS: Final = 825  # the longest validity clients still accept for a server
_JAAS: Final = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass(frozen=True, slots=True)
class SecureAccess:
    """What a client needs to reach the secure listener; the password prints masked."""

    bootstrap: str
    ca_location: Path
    username: str
    password: str = field(repr=False)

    def client_config(self) -> dict[str, str]:
        """librdkafka properties of a client of this listener."""
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": PROTOCOL,
            "sasl.mechanism": MECHANISM,
            "sasl.username": self.username,
            "sasl.password": self.password,
            "ssl.ca.location": str(self.ca_location),
        }


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    """The local CA's certificate: the clients' trust anchor."""
    keystore: Path
    """The broker's key and certificate chain, PEM, as Kafka's `ssl.keystore.type=PEM` reads it."""


def ensure_certificates(folder: Path, *, now: datetime.datetime | None = None) -> TlsFiles:
    """The CA and broker certificate in `folder`, made on first use (the broker's names:
    127.0.0.1 and localhost). Kept afterwards, so clients that trust the CA keep working
    across restarts."""
    files = TlsFiles(folder / "ca.pem", folder / "broker.pem")
    if files.ca.exists() and files.keystore.exists():
        return files
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=CERTIFICATE_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hookline local CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    broker_key = ec.generate_private_key(ec.SECP256R1())
    names = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    broker_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    broker = (
        _builder(broker_name, ca_name, broker_key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(names, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = broker_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),  # the folder is the owner's alone, as the data is
    )
    chain = broker.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    _write_private(files.keystore, key_pem + chain)
    _write_private(files.ca, ca.public_bytes(serialization.Encoding.PEM))
    return files


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePublicKey,
    start: datetime.datetime,
    end: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600)
    path.write_bytes(data)


def with_secure_listener(properties: str, *, port: int, tls: TlsFiles) -> str:
    """A broker's `server.properties` text with a SASL_SSL listener on 127.0.0.1:`port`
    added to its listeners, advertised listeners and protocol map, and SCRAM-SHA-512 on it."""
    listener = f"{PROTOCOL}://127.0.0.1:{port}"
    added = {
        "listeners": listener,
        "advertised.listeners": listener,
        "listener.security.protocol.map": f"{PROTOCOL}:{PROTOCOL}",
    }
    lines = []
    for line in properties.splitlines():
        key, sep, value = line.partition("=")
        lines.append(f"{key}={value},{added[key]}" if sep and key in added else line)
    prefix = f"listener.name.{PROTOCOL.lower()}"
    lines += [
        f"{prefix}.sasl.enabled.mechanisms={MECHANISM}",
        f"{prefix}.{MECHANISM.lower()}.sasl.jaas.config={_JAAS}",
        f"{prefix}.ssl.keystore.type=PEM",
        f"{prefix}.ssl.keystore.location={tls.keystore}",
        "",
    ]
    return "\n".join(lines)


def add_scram_user(plain_bootstrap: str, *, username: str, password: str) -> None:
    """Create (or reset) the SCRAM-SHA-512 user over the broker's PLAINTEXT listener.

    Through the admin API rather than `kafka-storage format --add-scram`: a data folder
    formatted before `--secure` was first asked for gets its user the same way."""
    admin = AdminClient({"bootstrap.servers": plain_bootstrap, "log_level": 0})
    upsert = UserScramCredentialUpsertion(
        username,
        ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
        password.encode(),
    )
    try:
        for future in admin.alter_user_scram_credentials([upsert], request_timeout=30).values():
            future.result(timeout=30)
    except KafkaException as exc:
        raise LocalStackError("kafka", f"cannot create the SCRAM user {username}: {exc}") from exc


def secure_listener_answers(access: SecureAccess) -> bool:
    """Whether a client logs in over TLS and SCRAM and lists the brokers."""
    admin = AdminClient({**access.client_config(), "socket.timeout.ms": 2000, "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=2).brokers)
    except KafkaException:
        return False
