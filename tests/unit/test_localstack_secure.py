"""The local stack's secure listener: the certificates it makes and the broker properties."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from hookline.app.localstack.secure import SecureAccess, ensure_certificates, with_secure_listener

BASE = "\n".join(
    [
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        "advertised.listeners=PLAINTEXT://127.0.0.1:9092",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        "",
    ]
)


def test_the_broker_certificate_names_the_local_addresses_and_chains_to_the_ca(
    tmp_path: Path,
) -> None:
    files = ensure_certificates(tmp_path / "tls")
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    keystore = files.keystore.read_bytes()
    assert keystore.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Kafka's PEM store reads
    broker, chained_ca = x509.load_pem_x509_certificates(keystore)
    assert chained_ca == ca
    broker.verify_directly_issued_by(ca)
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(broker.public_key(), ec.EllipticCurvePublicKey)
    assert files.keystore.stat().st_mode & 0o077 == 0


def test_certificates_are_kept_across_starts(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path)
    ca = first.ca.read_bytes()
    assert ensure_certificates(tmp_path).ca.read_bytes() == ca


def test_the_secure_listener_is_added_beside_the_plaintext_ones(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    text = with_secure_listener(BASE, port=9094, tls=files)
    props = dict(line.split("=", 1) for line in text.splitlines() if line)
    assert props["listeners"].endswith(",SASL_SSL://127.0.0.1:9094")
    assert props["advertised.listeners"] == ("PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094")
    assert props["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "ScramLoginModule" in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == str(files.keystore)


def test_the_access_prints_no_password(tmp_path: Path) -> None:
    access = SecureAccess("127.0.0.1:9094", tmp_path / "ca.pem", "hookline", "scram-secret")
    assert "scram-secret" not in repr(access)
    assert access.client_config()["sasl.password"] == "scram-secret"
