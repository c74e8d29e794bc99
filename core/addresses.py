"""The SSRF address policy: which IP addresses a webhook may be sent to.

Pure: hosts are parsed and addresses judged here; resolving and connecting happen in the shell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Final, TypeAlias

import idna

from core.errors import TargetRefused

IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True)
class Allowed:
    """The address may be connected to."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The address must not be connected to; ``reason`` names the address and the rule."""

    reason: str


AddressVerdict: TypeAlias = Allowed | Refused


# Checked in order; the first match gives the reason. Broadcast precedes 240/4 on purpose.
_V4_REFUSED: Final[tuple[tuple[IPv4Network, str], ...]] = tuple(
    (IPv4Network(cidr), reason)
    for cidr, reason in (
        ("0.0.0.0/8", "'this network' (0.0.0.0/8, includes unspecified)"),
        ("10.0.0.0/8", "private (10.0.0.0/8)"),
        ("100.64.0.0/10", "shared address space / CGNAT (100.64.0.0/10)"),
        ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
        ("169.254.0.0/16", "link-local / cloud metadata (169.254.0.0/16)"),
        ("172.16.0.0/12", "private (172.16.0.0/12)"),
        ("192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)"),
        ("192.0.2.0/24", "documentation (192.0.2.0/24)"),
        ("192.88.99.0/24", "deprecated 6to4 relay anycast (192.88.99.0/24)"),
        ("192.168.0.0/16", "private (192.168.0.0/16)"),
        ("198.18.0.0/15", "benchmarking (198.18.0.0/15)"),
        ("198.51.100.0/24", "documentation (198.51.100.0/24)"),
        ("203.0.113.0/24", "documentation (203.0.113.0/24)"),
        ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
        ("255.255.255.255/32", "limited broadcast (255.255.255.255)"),
        ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
    )
)

# IPv6 ranges refused outright. The wrapping forms that are decided by their embedded IPv4
# alone (mapped, NAT64 well-known, 6to4, Teredo) are handled by ``_embedded_ipv4`` instead.
_V6_REFUSED: Final[tuple[tuple[IPv6Network, str], ...]] = tuple(
    (IPv6Network(cidr), reason)
    for cidr, reason in (
        ("::/128", "unspecified (::)"),
        ("::1/128", "loopback (::1)"),
        ("::/96", "deprecated IPv4-compatible (::/96)"),
        ("::ffff:0:0:0/96", "IPv4-translated (::ffff:0:0:0/96)"),
        ("64:ff9b:1::/48", "local-use NAT64 (64:ff9b:1::/48)"),
        ("100::/64", "discard-only (100::/64)"),
        ("2001:2::/48", "benchmarking (2001:2::/48)"),
        ("2001:db8::/32", "documentation (2001:db8::/32)"),
        ("3fff::/20", "documentation (3fff::/20)"),
        ("fc00::/7", "unique local / private (fc00::/7)"),
        ("fe80::/10", "link-local (fe80::/10)"),
        ("fec0::/10", "deprecated site-local (fec0::/10)"),
        ("ff00::/8", "multicast (ff00::/8)"),
    )
)

_MAPPED: Final = IPv6Network("::ffff:0:0/96")
_COMPATIBLE: Final = IPv6Network("::/96")
_NAT64_WELL_KNOWN: Final = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL: Final = IPv6Network("64:ff9b:1::/48")
_SIXTOFOUR: Final = IPv6Network("2002::/16")
_TEREDO: Final = IPv6Network("2001::/32")
# Forms carrying the IPv4 in their last 32 bits (NAT64 /96 prefixes, as used in practice).
_LOW32_WRAPPERS: Final = (
    (_MAPPED, "IPv4-mapped"),
    (_NAT64_WELL_KNOWN, "NAT64"),
    (_NAT64_LOCAL, "local-use NAT64"),
)
# Wrappers whose own range is not a reason to refuse: the embedded IPv4 decides.
_PURE_WRAPPERS: Final = (_MAPPED, _NAT64_WELL_KNOWN, _SIXTOFOUR, _TEREDO)

# One inet_aton part: decimal, octal (leading 0) or hex (0x, digits optional as in glibc).
_V4_PART: Final = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


def normalise_host(host: str) -> str:
    """The host as the HTTP client sends to it: what yarl (under aiohttp) makes of a URL host.

    ASCII is lower-cased; anything else goes through IDNA with the UTS 46 mapping (NFKC), so
    fullwidth digits and ideographic full stops become ASCII: fullwidth ``169.254.169.254`` is
    ``169.254.169.254``. (yarl also refuses hosts holding default-ignorable code points,
    which the mapping deletes; judging the mapped host for those only refuses more.) Raises
    ValueError for a host neither IDNA 2008 nor yarl's IDNA 2003 fallback can encode.
    """
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError:
        pass  # yarl falls back to Python's IDNA 2003 codec; so do we
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"the host is not a valid internationalised name: {exc}") from None


def parse_host_literal(host: str) -> IPAddress | None:
    """The IP address a URL host denotes if it is an IP literal, else None (a DNS name).

    The host is read as the HTTP client will send to it (`normalise_host`), then accepts
    everything the system resolver's inet_aton accepts (``2130706433``, ``0x7f.1``,
    ``0177.0.0.1``, ``127.1``), one trailing dot, bracketed IPv6 and IPv6 zone ids (dropped:
    the policy judges the address, not the interface). A host that cannot be normalised is
    no literal (and no URL the deliverer can send to).
    """
    try:
        text = normalise_host(host.strip())
    except ValueError:
        return None
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        return _parse_ipv6(text)
    return _parse_ipv4_loose(text)


def _parse_ipv6(text: str) -> IPv6Address | None:
    address_text, _, _zone = text.partition("%")
    try:
        return IPv6Address(address_text)
    except ValueError:
        return None


def _parse_ipv4_loose(text: str) -> IPv4Address | None:
    if text.endswith("."):
        text = text[:-1]
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_V4_PART.fullmatch(part) for part in parts):
        return None
    values = [_part_value(part) for part in parts]
    # inet_aton: the last part fills all remaining bytes; the others are one byte each.
    last_bits = 8 * (5 - len(values))
    if any(value > 0xFF for value in values[:-1]) or values[-1] >= 1 << last_bits:
        return None
    packed = 0
    for value in values[:-1]:
        packed = packed << 8 | value
    return IPv4Address(packed << last_bits | values[-1])


def _part_value(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    # Past 10 digits it exceeds 32 bits anyway; int() would refuse 4300+ digits with an error.
    return int(part) if len(part) <= 10 else 1 << 32


def _embedded_ipv4(address: IPv6Address) -> tuple[tuple[IPv4Address, str], ...]:
    """The IPv4 addresses an IPv6 address wraps, each with the name of the wrapping form."""
    bits = int(address)
    low32 = IPv4Address(bits & 0xFFFF_FFFF)
    for network, form in _LOW32_WRAPPERS:
        if address in network:
            return ((low32, form),)
    if address in _COMPATIBLE and bits > 1:  # :: and ::1 wrap nothing
        return ((low32, "IPv4-compatible"),)
    if address in _SIXTOFOUR:
        return ((IPv4Address((bits >> 80) & 0xFFFF_FFFF), "6to4"),)
    if address in _TEREDO:
        server = IPv4Address((bits >> 64) & 0xFFFF_FFFF)
        client = IPv4Address(~bits & 0xFFFF_FFFF)
        return ((server, "Teredo server"), (client, "Teredo client"))
    return ()


def _own_refusal(address: IPAddress) -> str | None:
    """Why the address itself (not what it wraps) is refused, or None."""
    if isinstance(address, IPv4Address):
        for network, reason in _V4_REFUSED:
            if address in network:
                return reason
    else:
        for network6, reason in _V6_REFUSED:
            if address in network6:
                return reason
        if any(address in wrapper for wrapper in _PURE_WRAPPERS):
            return None
    # Backstop for special-purpose ranges the tables above do not name.
    if not address.is_global or address.is_multicast or address.is_reserved:
        return "not globally routable (special-purpose range)"
    return None


def _within(address: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in allowed)


def check_address(address: IPAddress, *, allowed: Sequence[IPNetwork]) -> AddressVerdict:
    """Judge one address. ``allowed`` lifts refusals only for addresses inside those networks.

    An IPv6 address wrapping IPv4 (mapped, IPv4-compatible, 6to4, Teredo, NAT64) is refused if
    any wrapped IPv4 is refused; the allow-list is checked against the raw and wrapped forms.
    """
    if isinstance(address, IPv6Address) and address.scope_id is not None:
        address = IPv6Address(int(address))
    if _within(address, allowed):
        return Allowed()
    if isinstance(address, IPv6Address):
        for inner, form in _embedded_ipv4(address):
            inner_reason = _own_refusal(inner)
            if inner_reason is not None and not _within(inner, allowed):
                return Refused(f"{address} is {form} for {inner}, which is {inner_reason}")
    reason = _own_refusal(address)
    if reason is None:
        return Allowed()
    return Refused(f"{address} is {reason}")


def check_resolved(
    addresses: Iterable[IPAddress], *, allowed: Sequence[IPNetwork]
) -> AddressVerdict:
    """Judge every answer of a DNS lookup: one refused address refuses the name; none refuses."""
    seen = False
    for address in addresses:
        seen = True
        verdict = check_address(address, allowed=allowed)
        if isinstance(verdict, Refused):
            return verdict
    return Allowed() if seen else Refused("the name resolved to no addresses")


def ensure_literal_host_allowed(host: str, *, allowed: Sequence[IPNetwork]) -> None:
    """Raise TargetRefused if ``host`` is an IP literal the policy refuses.

    DNS names pass here; their answers are judged with ``check_resolved`` at connection time.
    """
    address = parse_host_literal(host)
    if address is None:
        return
    verdict = check_address(address, allowed=allowed)
    if isinstance(verdict, Refused):
        raise TargetRefused(host, verdict.reason)


def parse_allowed_networks(text: str) -> tuple[IPNetwork, ...]:
    """Parse the comma-separated CIDR setting (e.g. ``127.0.0.0/8,::1/128``); empty means none."""
    networks: list[IPNetwork] = []
    for raw_entry in text.split(","):
        entry = raw_entry.strip()
        if not entry:
            continue
        try:
            networks.append(ip_network(entry, strict=True))
        except ValueError as exc:
            raise ValueError(
                f"allowed target network {entry!r} is not a CIDR network"
                f" such as 127.0.0.0/8 or ::1/128: {exc}"
            ) from exc
    return tuple(networks)
