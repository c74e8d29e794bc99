"""Unit tests of the SSRF address policy in core.addresses (docs/security.md, "SSRF policy")."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest
from yarl import URL

from core.addresses import (
    Allowed,
    IPAddress,
    Refused,
    check_address,
    check_resolved,
    ensure_literal_host_allowed,
    normalise_host,
    parse_allowed_networks,
    parse_host_literal,
)
from core.errors import TargetRefused


def teredo(server: str, client: str) -> str:
    """A Teredo address (2001::/32) for a server and a client IPv4, client bits inverted."""
    bits = (
        0x2001_0000 << 96
        | int(IPv4Address(server)) << 64
        | 0x8000 << 48  # flags
        | 0xFFFF << 32  # obfuscated port
        | (~int(IPv4Address(client)) & 0xFFFF_FFFF)
    )
    return str(IPv6Address(bits))


def host_address(host: str) -> IPAddress:
    address = parse_host_literal(host)
    assert address is not None, f"{host!r} should parse as an IP literal"
    return address


REFUSED_HOSTS = [
    # loopback, in every spelling a resolver accepts
    "127.0.0.1",
    "127.255.255.254",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "0x7F.0.0.1",
    "0177.0.0.1",
    "0177.1",
    "127.1",
    "127.0.1",
    "127.0.0.1.",
    "::1",
    "[::1]",
    "0:0:0:0:0:0:0:1",
    # unspecified, "this network", broadcast
    "0.0.0.0",
    "0",
    "0.1.2.3",
    "::",
    "[::]",
    "255.255.255.255",
    "0xffffffff",
    # private
    "10.0.0.1",
    "10.255.255.255",
    "012.1",
    "172.16.0.1",
    "172.20.10.5",
    "172.31.255.255",
    "192.168.0.1",
    "192.168.255.254",
    "0xc0.0xa8.0x01.0x01",
    "3232235777",
    "fc00::1",
    "fd12::1",
    "fd00:ec2::254",
    # link-local and cloud metadata
    "169.254.169.254",
    "169.254.0.1",
    "2852039166",
    "0xa9.0xfe.0xa9.0xfe",
    "fe80::1",
    "fe80::1%eth0",
    "[fe80::1%25eth0]",
    "febf::1",
    # CGNAT, special-purpose, benchmarking, documentation, reserved
    "100.64.0.1",
    "100.127.255.254",
    "192.0.0.1",
    "192.0.0.170",
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.9",
    "198.18.0.1",
    "198.19.255.1",
    "192.88.99.1",
    "240.0.0.1",
    "250.1.2.3",
    "100::1",
    "2001:db8::1",
    "2001:2::1",
    "fec0::1",
    # multicast
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "ff05::1:3",
    # IPv6 forms wrapping a refused IPv4
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "[::ffff:127.0.0.1]",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:192.168.1.1",
    "::ffff:0.0.0.0",
    "::127.0.0.1",
    "::7f00:1",
    "::a00:1",
    "::ffff:0:127.0.0.1",
    "64:ff9b::7f00:1",
    "64:ff9b::a00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::7f00:1",
    "64:ff9b:1::a00:1",
    "64:ff9b:1::808:808",
    "2002:7f00:1::",
    "2002:a00:1::1",
    "2002:a9fe:a9fe::1",
    "2002:c0a8:101::1",
    teredo("8.8.8.8", "127.0.0.1"),
    teredo("8.8.8.8", "10.0.0.1"),
    teredo("8.8.8.8", "169.254.169.254"),
    teredo("127.0.0.1", "8.8.8.8"),
]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_refused(host: str) -> None:
    verdict = check_address(host_address(host), allowed=())
    assert isinstance(verdict, Refused), f"{host} should be refused"
    assert verdict.reason


def test_refused_table_is_large() -> None:
    assert len(REFUSED_HOSTS) >= 60
    assert len(set(REFUSED_HOSTS)) == len(REFUSED_HOSTS)


ALLOWED_HOSTS = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "140.82.112.3",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.1",  # just above CGNAT
    "172.15.255.255",  # just below 172.16/12
    "172.32.0.1",  # just above 172.16/12
    "192.169.0.1",
    "198.17.255.255",
    "198.20.0.1",
    "223.255.255.255",
    "134744072",  # 8.8.8.8 as one number: an oddity is not refused for being odd
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "[2a00:1450:4001:82b::200e]",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
    teredo("8.8.8.8", "1.1.1.1"),
]


@pytest.mark.parametrize("host", ALLOWED_HOSTS)
def test_allowed(host: str) -> None:
    assert check_address(host_address(host), allowed=()) == Allowed()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.2", "10.1.0.2"),
        ("0x0a.0x00.0x00.0x01", "10.0.0.1"),
        ("0x", "0.0.0.0"),
        ("0x" + "0" * 5000 + "7f000001", "127.0.0.1"),
        ("0" * 5000 + "177.0.0.1", "127.0.0.1"),
        ("1.16777215", "1.255.255.255"),
        (" 8.8.8.8 ", "8.8.8.8"),
        ("[::1]", "::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
    ],
)
def test_parse_host_literal(host: str, expected: str) -> None:
    assert parse_host_literal(host) == ip_address(expected)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost",
        "127.0.0.1.nip.io",
        "",
        ".",
        "08.0.0.1",  # 8 is not an octal digit: inet_aton rejects it too
        "1.2.3.4.5",
        "256.0.0.1",
        "4294967296",
        "1" * 5000,  # too long for int(): must be "not a literal", not a crash
        "1.16777216",
        "0x1g",
        "1..1",
        "[::1",
        "::g",
    ],
)
def test_parse_host_literal_rejects_names_and_garbage(host: str) -> None:
    assert parse_host_literal(host) is None


def test_reason_names_the_wrapped_address() -> None:
    verdict = check_address(ip_address("64:ff9b::a9fe:a9fe"), allowed=())
    assert isinstance(verdict, Refused)
    assert "169.254.169.254" in verdict.reason
    assert "NAT64" in verdict.reason


def test_scope_id_on_a_resolved_address_is_ignored() -> None:
    assert isinstance(check_address(IPv6Address("fe80::1%2"), allowed=()), Refused)


LOCAL_DEV = parse_allowed_networks("127.0.0.0/8,::1/128")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "2130706433", "::1", "[::1]"])
def test_allow_list_lifts_its_networks(host: str) -> None:
    assert check_address(host_address(host), allowed=LOCAL_DEV) == Allowed()


def test_allow_list_checks_the_unwrapped_address() -> None:
    assert check_address(ip_address("::ffff:127.0.0.1"), allowed=LOCAL_DEV) == Allowed()
    assert check_address(ip_address("64:ff9b::7f00:1"), allowed=LOCAL_DEV) == Allowed()


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "169.254.169.254",
        "192.168.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "::",
        "::2",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        teredo("8.8.8.8", "10.0.0.1"),
    ],
)
def test_allow_list_lifts_nothing_else(host: str) -> None:
    assert isinstance(check_address(host_address(host), allowed=LOCAL_DEV), Refused)


def test_allow_list_does_not_lift_teredo_with_one_allowed_half() -> None:
    address = ip_address(teredo("10.0.0.1", "127.0.0.1"))
    assert isinstance(check_address(address, allowed=LOCAL_DEV), Refused)


def test_resolved_set_with_one_private_answer_is_refused() -> None:
    answers = [ip_address("93.184.216.34"), ip_address("10.0.0.7"), ip_address("8.8.8.8")]
    verdict = check_resolved(answers, allowed=())
    assert isinstance(verdict, Refused)
    assert "10.0.0.7" in verdict.reason


def test_resolved_set_of_public_answers_is_allowed() -> None:
    answers = [ip_address("93.184.216.34"), ip_address("2606:4700:4700::1111")]
    assert check_resolved(iter(answers), allowed=()) == Allowed()


def test_resolved_set_honours_the_allow_list() -> None:
    answers = [ip_address("127.0.0.1"), ip_address("::1")]
    assert check_resolved(answers, allowed=LOCAL_DEV) == Allowed()
    assert isinstance(check_resolved(answers, allowed=()), Refused)


def test_empty_resolution_is_refused() -> None:
    assert isinstance(check_resolved([], allowed=()), Refused)


def test_ensure_literal_host_allowed_raises_with_data() -> None:
    with pytest.raises(TargetRefused) as caught:
        ensure_literal_host_allowed("0x7f.1", allowed=())
    assert caught.value.address == "0x7f.1"
    assert "loopback" in caught.value.reason


def test_ensure_literal_host_allowed_passes_names_and_public_literals() -> None:
    ensure_literal_host_allowed("example.com", allowed=())
    ensure_literal_host_allowed("8.8.8.8", allowed=())
    ensure_literal_host_allowed("127.0.0.1", allowed=LOCAL_DEV)


def test_parse_allowed_networks() -> None:
    assert parse_allowed_networks(" 127.0.0.0/8 , ::1/128 ,") == (
        ip_network("127.0.0.0/8"),
        ip_network("::1/128"),
    )
    assert parse_allowed_networks("") == ()
    assert parse_allowed_networks("10.1.2.3") == (ip_network("10.1.2.3/32"),)


@pytest.mark.parametrize("bad", ["127.0.0.0/33", "localhost", "127.0.0.1/8", "::1/129"])
def test_parse_allowed_networks_names_the_bad_entry(bad: str) -> None:
    with pytest.raises(ValueError, match="allowed target network") as caught:
        parse_allowed_networks(f"::1/128,{bad}")
    assert repr(bad) in str(caught.value)


# Unicode spellings of refused addresses: yarl (under aiohttp, so under the deliverer's guard)
# maps them to ASCII with IDNA/UTS 46, so the create-time check must read them the same way.
UNICODE_HOSTS = [
    (
        "\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14",
        "169.254.169.254",
    ),
    ("169\u3002254\u3002169\u3002254", "169.254.169.254"),  # ideographic full stops
    ("1\uff127.0.0.1", "127.0.0.1"),
    ("\uff10\uff58\uff17\uff46.\uff11", "127.0.0.1"),  # fullwidth 0x7f.1
    ("\uff12\uff11\uff13\uff10\uff17\uff10\uff16\uff14\uff13\uff13", "127.0.0.1"),
    ("\uff11\uff10.0.0.1", "10.0.0.1"),
]


@pytest.mark.parametrize(("host", "expected"), UNICODE_HOSTS)
def test_unicode_digit_hosts_are_the_literal_they_map_to(host: str, expected: str) -> None:
    """Regression: fullwidth-digit 169.254.169.254 passed the create-time check as a DNS name."""
    assert parse_host_literal(host) == ip_address(expected)
    with pytest.raises(TargetRefused):
        ensure_literal_host_allowed(host, allowed=())


@pytest.mark.parametrize(
    "host",
    [
        *(host for host, _ in UNICODE_HOSTS),
        "EXAMPLE.com",
        "\uff25\uff38ample.com",
        "b\u00fccher.de",
        "\u2160" + "27.0.0.1",  # roman numeral one maps to a letter, not a digit
        "0x7F.1",
        "127.0.0.1.",
    ],
)
def test_normalise_host_agrees_with_the_http_client(host: str) -> None:
    """One normalisation: the host the create-time check judges is the one aiohttp sends to."""
    assert normalise_host(host) == URL(f"https://{host}/").raw_host


def test_normalise_host_refuses_what_idna_cannot_encode() -> None:
    with pytest.raises(ValueError, match="internationalised"):
        normalise_host("a\u00e9..b")
