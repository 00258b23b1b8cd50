"""Value types: port ranges, prefixes and MACs normalise to one canonical spelling."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from controller.core.values import (
    AddressPrefix,
    DashedMac,
    PortRange,
    check_resource_id,
    format_mac_bare,
    format_mac_dashed,
    parse_address,
    parse_mac,
    parse_port_range,
)

PROBE = settings(deadline=None, max_examples=80)
PORT_RANGE = TypeAdapter(PortRange)
PREFIX = TypeAdapter(AddressPrefix)
MAC = TypeAdapter(DashedMac)
DASHED = re.compile(r"^([0-9A-F]{2}-){5}[0-9A-F]{2}$")

ports = st.integers(min_value=0, max_value=65535)
port_pairs = st.tuples(ports, ports).map(lambda p: (min(p), max(p)))
spaces = st.sampled_from(["", " ", "  "])


@st.composite
def port_range_text(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]]]:
    """A port range as a sloppy client writes it, and the ranges it means."""
    pairs = draw(st.lists(port_pairs, min_size=1, max_size=5))
    parts = []
    for low, high in pairs:
        if low == high and draw(st.booleans()):
            part = str(low)
        else:
            part = f"{low}{draw(spaces)}-{draw(spaces)}{high}"
        parts.append(f"{draw(spaces)}{part}{draw(spaces)}")
    return ",".join(parts), pairs


def expected_port_text(pairs: list[tuple[int, int]]) -> str:
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in pairs)


@PROBE
@given(port_range_text())
def test_port_range_canonicalisation_round_trips(case: tuple[str, list[tuple[int, int]]]) -> None:
    text, pairs = case
    canonical = PORT_RANGE.validate_python(text)
    assert canonical == expected_port_text(pairs)
    assert parse_port_range(canonical) == pairs
    assert PORT_RANGE.validate_python(canonical) == canonical


@PROBE
@given(spaces, spaces)
def test_port_range_star_stays_star(before: str, after: str) -> None:
    assert PORT_RANGE.validate_python(f"{before}*{after}") == "*"
    assert parse_port_range("*") == [(0, 65535)]


@PROBE
@given(st.text(alphabet="0123456789-, *\u0663\u00a0", max_size=16))
def test_any_accepted_port_range_has_an_ascii_canonical_form(text: str) -> None:
    try:
        canonical = PORT_RANGE.validate_python(text)
    except ValidationError:
        return
    assert canonical.isascii()
    assert " " not in canonical
    assert parse_port_range(canonical) == parse_port_range(text)


@PROBE
@given(port_pairs.filter(lambda p: p[0] < p[1]))
def test_reversed_port_range_is_rejected(pair: tuple[int, int]) -> None:
    with pytest.raises(ValidationError):
        PORT_RANGE.validate_python(f"{pair[1]}-{pair[0]}")


@PROBE
@given(st.integers(min_value=65536, max_value=99999))
def test_port_above_65535_is_rejected(port: int) -> None:
    with pytest.raises(ValidationError):
        PORT_RANGE.validate_python(str(port))


@pytest.mark.parametrize("text", ["", "abc", "80-", "-80", "1,,2", "80,*", "100000", "1.5"])
def test_malformed_port_ranges_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError):
        PORT_RANGE.validate_python(text)


@st.composite
def networks(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    address = draw(st.ip_addresses())
    length = draw(st.integers(min_value=0, max_value=address.max_prefixlen))
    return ipaddress.ip_network((address, length), strict=False)


@PROBE
@given(networks(), st.booleans(), spaces)
def test_prefix_canonicalisation(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network, exploded: bool, pad: str
) -> None:
    text = network.exploded.upper() if exploded else str(network)
    canonical = PREFIX.validate_python(f"{pad}{text}{pad}")
    assert canonical == str(network)
    assert ipaddress.ip_network(canonical) == network
    assert PREFIX.validate_python(canonical) == canonical


@PROBE
@given(networks())
def test_prefix_with_host_bits_is_rejected(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> None:
    if network.num_addresses < 2:
        return
    host = network.network_address + 1
    with pytest.raises(ValidationError):
        PREFIX.validate_python(f"{host}/{network.prefixlen}")


@PROBE
@given(st.ip_addresses())
def test_bare_address_is_not_a_prefix(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    with pytest.raises(ValidationError):
        PREFIX.validate_python(str(address))


macs = st.integers(min_value=0, max_value=2**48 - 1)


def octets(mac: int) -> list[str]:
    return [f"{(mac >> shift) & 0xFF:02x}" for shift in range(40, -8, -8)]


@PROBE
@given(macs, st.sampled_from(["", "-", ":"]), st.booleans())
def test_mac_parses_in_the_three_notations(mac: int, separator: str, upper: bool) -> None:
    text = separator.join(octets(mac))
    text = text.upper() if upper else text
    assert parse_mac(text) == mac
    assert parse_mac(f" {text} ") == mac


@PROBE
@given(macs, st.sampled_from(["", "-", ":"]))
def test_mac_canonical_form_is_dashed_upper_case(mac: int, separator: str) -> None:
    canonical = MAC.validate_python(separator.join(octets(mac)))
    assert DASHED.match(canonical)
    assert canonical == format_mac_dashed(mac)
    assert parse_mac(canonical) == mac
    assert MAC.validate_python(canonical) == canonical


@PROBE
@given(macs)
def test_bare_mac_format_round_trips(mac: int) -> None:
    bare = format_mac_bare(mac)
    assert re.fullmatch(r"[0-9A-F]{12}", bare)
    assert parse_mac(bare) == mac


@pytest.mark.parametrize(
    "text",
    ["", "00-1D-D8-B7-1C", "00-1D-D8-B7-1C-0G", "001DD8B71C0", "00-1D:D8-B7:1C-00x", "0.1.2.3.4.5"],
)
def test_malformed_macs_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="MAC"):
        parse_mac(text)


@PROBE
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/\\?#%"), min_size=1))
def test_check_resource_id_accepts_or_rejects_with_value_error(text: str) -> None:
    try:
        assert check_resource_id(text) == text
    except ValueError:
        return
    assert text == text.strip()
    assert len(text) <= 256
    assert text not in (".", "..")
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


@pytest.mark.parametrize(
    "text", ["", " a", "a ", "a/b", "a\\b", "a?b", "a#b", "a%b", "a\tb", ".", ".."]
)
def test_invalid_resource_ids(text: str) -> None:
    with pytest.raises(ValueError, match="resourceId"):
        check_resource_id(text)


@pytest.mark.parametrize(
    "text", ["HNVPA", "10.10.56.0_23", "a b", "...", "Fabrikam_VNet1", "x" * 256]
)
def test_valid_resource_ids(text: str) -> None:
    assert check_resource_id(text) == text


@pytest.mark.parametrize("text", ["2001:db8::5%eth0", "fe80::1%1", "10.0.0.1%eth0", "2001:db8::g"])
def test_addresses_with_a_zone_or_malformed_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a valid IP address"):
        parse_address(text)


def test_ipv6_addresses_parse_to_their_canonical_form() -> None:
    assert str(parse_address(" 2001:DB8:0:0::5 ")) == "2001:db8::5"
