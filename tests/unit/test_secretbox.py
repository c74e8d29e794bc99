"""Secrets and custom header values sealed at rest (core.secretbox): each ciphertext opens only
where it was sealed."""

from __future__ import annotations

import os

import pytest

from core.errors import InvalidSecret
from core.secretbox import SecretBox

BOX = SecretBox(os.urandom(32))


def test_a_header_value_opens_under_its_subscription_and_name_in_any_case() -> None:
    sealed = BOX.seal_header("Bearer t0k3n", subscription_id="s1", name="Authorization")
    assert b"t0k3n" not in sealed
    assert BOX.open_header(sealed, subscription_id="s1", name="authorization") == "Bearer t0k3n"


@pytest.mark.parametrize(("subscription_id", "name"), [("s2", "Authorization"), ("s1", "X-Other")])
def test_a_header_value_copied_elsewhere_does_not_open(subscription_id: str, name: str) -> None:
    sealed = BOX.seal_header("Bearer t0k3n", subscription_id="s1", name="Authorization")
    with pytest.raises(InvalidSecret, match="header"):
        BOX.open_header(sealed, subscription_id=subscription_id, name=name)


def test_header_values_and_signing_secrets_never_open_as_each_other() -> None:
    """A header ciphertext moved into the secrets would be shown by GET .../secret."""
    header = BOX.seal_header("Bearer t0k3n", subscription_id="s1", name="Authorization")
    with pytest.raises(InvalidSecret):
        BOX.open(header, subscription_id="s1")
    secret = BOX.seal("whsec_x", subscription_id="s1")
    with pytest.raises(InvalidSecret):
        BOX.open_header(secret, subscription_id="s1", name="Authorization")
