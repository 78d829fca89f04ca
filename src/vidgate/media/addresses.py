"""Which IP addresses the server may connect to, and how URL hosts spell them."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TypeAlias

__all__ = [
    "IPAddress",
    "address_refusal",
    "describe_refusal",
    "parse_ip_literal",
]

IPAddress: TypeAlias = IPv4Address | IPv6Address

# An explicit table rather than ``ipaddress.is_global``: on Python 3.11 that property calls CGNAT
# neither private nor global, and calls NAT64, 6to4, IPv4-compatible, site-local and multicast
# IPv6 addresses global (see NOTES.md, "Egress"). The first matching row names the reason.
_IPV4_REFUSED: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(network), reason)
    for network, reason in (
        # "This network": Linux connects 0.0.0.0 to the local host.
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        # Includes 100.100.100.200, a cloud metadata service.
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        # Includes 169.254.169.254, the usual cloud metadata service.
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)

# Checked after the forms that embed an IPv4 address have been unwrapped (see _embedded_ipv4).
_IPV6_REFUSED: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(network), reason)
    for network, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        # Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the prefix length the
        # operator chose, so it cannot be unwrapped and checked reliably; refuse it outright.
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        # Teredo hides the server and client IPv4 addresses (the client's obfuscated): refuse.
        ("2001::/32", "Teredo"),
        ("2001:2::/48", "benchmarking"),
        ("2001::/23", "IETF special-purpose"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)

# Every public IPv6 allocation lies in 2000::/3; anything outside it that the table above does
# not name is reserved.
_IPV6_GLOBAL_UNICAST = IPv6Network("2000::/3")
_IPV4_COMPATIBLE = IPv6Network("::/96")
# The well-known NAT64 prefix (RFC 6052). Unwrapped and checked rather than refused: on an
# IPv6-only host behind DNS64 every public IPv4 site resolves into this prefix, and a NAT64
# gateway would translate 64:ff9b::a00:1 to 10.0.0.1.
_NAT64 = IPv6Network("64:ff9b::/96")

_AN_PREFIXES = ("unspecified", "IPv4", "IETF")


def address_refusal(ip: IPAddress) -> str | None:
    """None for a public unicast address, else why the server must not connect to it.

    The reason is a short phrase ("loopback", "private", "IPv4-mapped loopback") that reads
    well in ``describe_refusal``.
    """
    if isinstance(ip, IPv4Address):
        return _ipv4_refusal(ip)
    return _ipv6_refusal(ip)


def describe_refusal(reason: str) -> str:
    """'a loopback address', 'an unspecified address': the reason with its article."""
    article = "an" if reason.startswith(_AN_PREFIXES) else "a"
    return f"{article} {reason} address"


def _ipv4_refusal(ip: IPv4Address) -> str | None:
    for network, reason in _IPV4_REFUSED:
        if ip in network:
            return reason
    # A safety net for whatever the table might have missed; the table names the reason.
    if not ip.is_global:
        return "non-global"
    return None


def _ipv6_refusal(ip: IPv6Address) -> str | None:
    if ip.scope_id is not None:
        ip = IPv6Address(ip.packed)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        form, ipv4 = embedded
        inner = _ipv4_refusal(ipv4)
        if inner is not None:
            return f"{form} {inner}"
        # IPv4-compatible addresses are deprecated (RFC 4291) and nothing legitimate uses them.
        return "deprecated IPv4-compatible" if form == "IPv4-compatible" else None
    for network, reason in _IPV6_REFUSED:
        if ip in network:
            return reason
    if ip not in _IPV6_GLOBAL_UNICAST:
        return "reserved"
    if not ip.is_global:
        return "non-global"
    return None


def _embedded_ipv4(ip: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address a mapped, compatible, NAT64 or 6to4 address leads to, with its form."""
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _IPV4_COMPATIBLE:
        return "IPv4-compatible", IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64:
        return "NAT64", IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a URL host names when it is an IP literal, read as ``getaddrinfo`` reads it.

    IPv4 follows ``inet_aton``: one to four dotted parts, each decimal, octal (leading 0) or hex
    (0x); the last part fills the remaining bytes, so ``2130706433``, ``0x7f.1`` and ``0177.1``
    are all 127.0.0.1. IPv6 may come with or without brackets. None means a host name.
    """
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if bracketed or ":" in host:
        try:
            return IPv6Address(host)
        except ValueError:
            return None
    return _parse_inet_aton(host)


_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"), 16: frozenset("0123456789abcdef")}


def _parse_inet_aton(host: str) -> IPv4Address | None:
    parts = host.split(".")
    if len(parts) > 4:
        return None
    values: list[int] = []
    for part in parts:
        value = _parse_inet_number(part)
        if value is None:
            return None
        values.append(value)
    *leading, last = values
    # The last part fills every byte the others leave: 32 bits alone, 24 after one part...
    last_bits = 8 * (5 - len(values))
    if any(value > 0xFF for value in leading) or last >= 1 << last_bits:
        return None
    number = 0
    for value in leading:
        number = number << 8 | value
    return IPv4Address(number << last_bits | last)


def _parse_inet_number(part: str) -> int | None:
    """One dotted part as C's ``strtoul(part, 0)`` reads it, or None if it is not all number."""
    lowered = part.lower()
    if lowered.startswith("0x"):
        base, digits = 16, lowered[2:]
    elif len(lowered) > 1 and lowered.startswith("0"):
        base, digits = 8, lowered[1:]
    else:
        base, digits = 10, lowered
    # Checked by hand because int() also accepts "_", "+" and surrounding whitespace.
    if not digits or not set(digits) <= _DIGITS[base]:
        return None
    significant = digits.lstrip("0") or "0"
    # 12 significant digits exceed 32 bits in any of the three bases; this also keeps int()
    # away from its limit on very long decimal strings.
    if len(significant) > 11:
        return None
    return int(significant, base)
