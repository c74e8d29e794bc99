"""Unit tests of Standard Webhooks signing, checked against the independent reference package."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from core.errors import InvalidSecret, SignatureMismatch, TimestampOutOfTolerance
from core.signing import decode_secret, generate_secret, sign, verify

SECRET_A = "whsec_" + base64.b64encode(bytes(range(32))).decode()
SECRET_B = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
MSG_ID = "0193a3e2-7d5c-7b7e-9f0e-3c2b1a000001"


def reference_verify(secret: str, *, msg_id: str, timestamp_s: int, body: bytes, sig: str) -> None:
    """Verify with the standardwebhooks package, which reads the clock itself."""
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": sig,
    }
    Webhook(secret).verify(body, headers, json_parse=False)


@pytest.mark.parametrize(
    "body",
    [
        '{"type":"task.created","data":{"title":"Grüße, 東京 🚀 \\u00e9"}}'.encode(),
        b'{"data":"' + b"x" * (1024 * 1024) + b'"}',
    ],
    ids=["non-ascii", "one-mebibyte"],
)
def test_reference_package_verifies_our_signature(body: bytes) -> None:
    now_s = int(time.time())
    signature = sign(msg_id=MSG_ID, timestamp_s=now_s, body=body, secrets=[SECRET_A])
    reference_verify(SECRET_A, msg_id=MSG_ID, timestamp_s=now_s, body=body, sig=signature)
    verify(
        msg_id=MSG_ID,
        timestamp_s=now_s,
        body=body,
        signature_header=signature,
        secret=SECRET_A,
        now_s=now_s,
    )


def test_known_answer() -> None:
    # Computed independently: the signed content is b"<id>.<ts>." + body.
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(bytes(range(32)), b"msg_1.1700000000." + body, hashlib.sha256).digest()
    signature = sign(msg_id="msg_1", timestamp_s=1_700_000_000, body=body, secrets=[SECRET_A])
    assert signature == "v1," + base64.b64encode(expected).decode()


def test_rotation_gives_one_signature_per_secret_each_verifying() -> None:
    now_s = int(time.time())
    body = b'{"type":"task.updated"}'
    header = sign(msg_id=MSG_ID, timestamp_s=now_s, body=body, secrets=[SECRET_A, SECRET_B])
    entries = header.split(" ")
    assert len(entries) == 2
    assert all(entry.startswith("v1,") for entry in entries)
    assert entries[0] == sign(msg_id=MSG_ID, timestamp_s=now_s, body=body, secrets=[SECRET_A])
    assert entries[1] == sign(msg_id=MSG_ID, timestamp_s=now_s, body=body, secrets=[SECRET_B])
    for secret in (SECRET_A, SECRET_B):
        reference_verify(secret, msg_id=MSG_ID, timestamp_s=now_s, body=body, sig=header)
        verify(
            msg_id=MSG_ID,
            timestamp_s=now_s,
            body=body,
            signature_header=header,
            secret=secret,
            now_s=now_s,
        )
    third = generate_secret()
    with pytest.raises(WebhookVerificationError):
        reference_verify(third, msg_id=MSG_ID, timestamp_s=now_s, body=body, sig=header)
    with pytest.raises(SignatureMismatch):
        verify(
            msg_id=MSG_ID,
            timestamp_s=now_s,
            body=body,
            signature_header=header,
            secret=third,
            now_s=now_s,
        )


@pytest.mark.parametrize(
    ("msg_id", "timestamp_delta_s", "body"),
    [
        (MSG_ID, 0, b'{"type":"task.created","n":2}'),  # body changed
        (MSG_ID + "x", 0, b'{"type":"task.created","n":1}'),  # id changed
        (MSG_ID, 1, b'{"type":"task.created","n":1}'),  # timestamp changed
    ],
)
def test_tampering_is_detected(msg_id: str, timestamp_delta_s: int, body: bytes) -> None:
    now_s = int(time.time())
    header = sign(
        msg_id=MSG_ID, timestamp_s=now_s, body=b'{"type":"task.created","n":1}', secrets=[SECRET_A]
    )
    timestamp_s = now_s + timestamp_delta_s
    with pytest.raises(WebhookVerificationError):
        reference_verify(SECRET_A, msg_id=msg_id, timestamp_s=timestamp_s, body=body, sig=header)
    with pytest.raises(SignatureMismatch):
        verify(
            msg_id=msg_id,
            timestamp_s=timestamp_s,
            body=body,
            signature_header=header,
            secret=SECRET_A,
            now_s=now_s,
        )


@pytest.mark.parametrize(
    "header",
    ["", "v1,", "v1,not-base64!!", "v2,AAAA", "v1", "v1a,abc v0,xyz"],
)
def test_malformed_headers_do_not_verify(header: str) -> None:
    with pytest.raises(SignatureMismatch):
        verify(
            msg_id=MSG_ID,
            timestamp_s=100,
            body=b"{}",
            signature_header=header,
            secret=SECRET_A,
            now_s=100,
        )


def test_unknown_versions_are_skipped_before_a_good_signature() -> None:
    good = sign(msg_id=MSG_ID, timestamp_s=100, body=b"{}", secrets=[SECRET_A])
    verify(
        msg_id=MSG_ID,
        timestamp_s=100,
        body=b"{}",
        signature_header=f"v2,AAAA v1,@@@ {good}",
        secret=SECRET_A,
        now_s=100,
    )


@pytest.mark.parametrize(
    ("delta_s", "ok"), [(-300, True), (300, True), (-301, False), (301, False)]
)
def test_timestamp_tolerance(delta_s: int, ok: bool) -> None:
    timestamp_s = 1_700_000_000
    header = sign(msg_id=MSG_ID, timestamp_s=timestamp_s, body=b"{}", secrets=[SECRET_A])

    def check() -> None:
        verify(
            msg_id=MSG_ID,
            timestamp_s=timestamp_s,
            body=b"{}",
            signature_header=header,
            secret=SECRET_A,
            now_s=timestamp_s + delta_s,
        )

    if ok:
        check()
    else:
        with pytest.raises(TimestampOutOfTolerance) as caught:
            check()
        assert caught.value.tolerance_s == 300


def test_generated_secret_format() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(decode_secret(secret)) == 32
    assert base64.b64decode(secret.removeprefix("whsec_"), validate=True) == decode_secret(secret)
    assert generate_secret() != secret
    # The reference package accepts it too.
    Webhook(secret)


def test_decode_secret_returns_the_key() -> None:
    assert decode_secret(SECRET_A) == bytes(range(32))


@pytest.mark.parametrize(
    "secret",
    [
        "",
        base64.b64encode(bytes(32)).decode(),  # no prefix
        "whsk_" + base64.b64encode(bytes(32)).decode(),
        "whsec_",
        "whsec_" + base64.b64encode(bytes(32)).decode().rstrip("="),  # unpadded
        "whsec_" + base64.b64encode(bytes(32)).decode()[:-2] + "B=",  # non-canonical bits
        "whsec_" + base64.urlsafe_b64encode(b"\xff" * 32).decode(),  # url-safe alphabet
        "whsec_" + base64.b64encode(bytes(16)).decode(),  # too short
        "whsec_" + base64.b64encode(bytes(65)).decode(),  # too long
        "whsec_" + base64.b64encode(bytes(32)).decode() + " ",
        "whsec_ÄÄÄÄ",
    ],
)
def test_decode_secret_is_strict(secret: str) -> None:
    with pytest.raises(InvalidSecret) as caught:
        decode_secret(secret)
    assert "AAAA" not in str(caught.value), "the message must not echo the secret"


def test_sign_needs_a_secret() -> None:
    with pytest.raises(InvalidSecret):
        sign(msg_id=MSG_ID, timestamp_s=1, body=b"{}", secrets=[])
