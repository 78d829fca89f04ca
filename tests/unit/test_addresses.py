"""The address table and the getaddrinfo-compatible reading of IP literals."""

from __future__ import annotations

import socket
import sys
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidgate.media.addresses import address_refusal, describe_refusal, parse_ip_literal

REFUSED = [
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.100.100.200", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.169.254", "link-local"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.0.0.8", "IETF protocol assignment"),
    ("192.0.2.1", "documentation"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("192.168.1.1", "private"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::8.8.8.8", "deprecated IPv4-compatible"),
    ("64:ff9b::7f00:1", "NAT64 loopback"),
    ("64:ff9b::a00:1", "NAT64 private"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    ("100::1", "discard-only"),
    ("2001::1", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:2::1", "benchmarking"),
    ("2001:10::1", "IETF special-purpose"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2002:7f00:1::", "6to4 loopback"),
    ("2002:a00:1::1", "6to4 private"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("4000::1", "reserved"),
    ("::ffff:0:7f00:1", "reserved"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.32.0.1",
    "172.15.255.255",
    "100.128.0.1",
    "100.63.255.255",
    "192.169.0.1",
    "11.0.0.1",
    "126.255.255.255",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:800::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_refused_addresses_name_their_reason(address: str, reason: str) -> None:
    assert address_refusal(ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_addresses_are_accepted(address: str) -> None:
    assert address_refusal(ip_address(address)) is None


@pytest.mark.parametrize(
    ("reason", "phrase"),
    [
        ("loopback", "a loopback address"),
        ("unspecified", "an unspecified address"),
        ("unique-local", "a unique-local address"),
        ("IPv4-mapped private", "an IPv4-mapped private address"),
        ("IETF special-purpose", "an IETF special-purpose address"),
    ],
)
def test_refusal_reads_with_its_article(reason: str, phrase: str) -> None:
    assert describe_refusal(reason) == phrase


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("00", "0.0.0.0"),
        ("10.1", "10.0.0.1"),
        ("0xa.0x0.0x0.0x1", "10.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("0000000000000000177.1", "127.0.0.1"),
        ("4294967295", "255.255.255.255"),
        ("1.16777215", "1.255.255.255"),
        ("8.8.8.8", "8.8.8.8"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[2606:4700:4700::1111]", "2606:4700:4700::1111"),
    ],
)
def test_ip_literals_read_as_getaddrinfo_reads_them(host: str, expected: str) -> None:
    assert parse_ip_literal(host) == ip_address(expected)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost",
        "1.2.3.4.example",
        "1.2.3.4.5",
        "1.2.3.4.",
        "0x7g.1",  # not hex: a (strange) host name, left to DNS, whose answer is checked
        "0x",
        "08",
        "09.1",
        "00x1",
        "1..2",
        ".1",
        "1.",
        "256.1",
        "1.16777216",
        "4294967296",
        "99999999999999999999",
        "1_0",
        "+1",
        " 1",
        "",
        "[zz]",
        "[1.2.3.4]",
        "١٢٣",  # Arabic-Indic digits: str.isdigit says yes, inet_aton says no
    ],
)
def test_host_names_and_malformed_numbers_are_not_literals(host: str) -> None:
    assert parse_ip_literal(host) is None


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "0",
        "0x7f.1",
        "017700000001",
        "[::ffff:127.0.0.1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
        "167772161",
        "0xa9fea9fe",
        "0300.0250.1.1",
        "100.100.25800",
    ],
)
def test_odd_encodings_of_internal_addresses_are_refused(host: str) -> None:
    ip = parse_ip_literal(host)
    assert ip is not None
    assert address_refusal(ip) is not None


REFUSED_V4_NETWORKS = [
    IPv4Network(network)
    for network in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]


@st.composite
def refused_ipv4(draw: st.DrawFn) -> IPv4Address:
    network = draw(st.sampled_from(REFUSED_V4_NETWORKS))
    offset = draw(st.integers(0, network.num_addresses - 1))
    return network[offset]


def _spellings(ip: IPv4Address) -> list[str]:
    number = int(ip)
    octets = ip.packed
    return [
        str(number),
        hex(number),
        f"0{number:o}",
        ".".join(f"0x{octet:x}" for octet in octets),
        ".".join(f"0{octet:o}" for octet in octets),
        f"{octets[0]}.{number & 0xFFFFFF}",
        f"0x{octets[0]:x}.{octets[1]}.0{number & 0xFFFF:o}",
        f"[::ffff:{ip}]",
    ]


@given(refused_ipv4())
def test_every_spelling_of_a_refused_ipv4_decodes_to_it_and_is_refused(ip: IPv4Address) -> None:
    for spelling in _spellings(ip):
        parsed = parse_ip_literal(spelling)
        assert parsed is not None, spelling
        unwrapped = parsed.ipv4_mapped if isinstance(parsed, IPv6Address) else parsed
        assert unwrapped == ip, spelling
        assert address_refusal(parsed) is not None, spelling


@pytest.mark.skipif(sys.platform != "linux", reason="compares with glibc's inet_aton")
@given(st.text(alphabet="0123456789abcdefxX.", max_size=24))
def test_ipv4_reading_agrees_with_inet_aton(host: str) -> None:
    try:
        expected: IPv4Address | None = IPv4Address(socket.inet_aton(host))
    except OSError:
        expected = None
    assert parse_ip_literal(host) == expected
