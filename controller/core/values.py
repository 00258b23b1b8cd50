"""Value types shared by resource models: prefixes, addresses, MACs, port ranges, ids.

Each type validates on input and normalises to one canonical string, so stored documents and
responses never carry two spellings of the same value.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Annotated

import netaddr
from pydantic import AfterValidator, BeforeValidator, Field

from controller.core.scalars import IntRange

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address

_RESOURCE_ID_FORBIDDEN = re.compile(r"[/\\?#%\x00-\x1f\x7f-\x9f]")
MAX_RESOURCE_ID_LENGTH = 256


def check_resource_id(value: str) -> str:
    """A user-chosen resourceId: 1-256 characters, none of them a path or control character."""
    if not value or value != value.strip():
        raise ValueError("resourceId must be non-empty and have no leading or trailing spaces")
    if len(value) > MAX_RESOURCE_ID_LENGTH:
        raise ValueError(f"resourceId is longer than {MAX_RESOURCE_ID_LENGTH} characters")
    if _RESOURCE_ID_FORBIDDEN.search(value):
        raise ValueError(
            "resourceId must not contain '/', '\\', '?', '#', '%' or control characters"
        )
    if value in (".", ".."):
        # URI dot segments: clients normalise them away, so the resourceRef is unusable.
        raise ValueError("resourceId must not be '.' or '..'")
    return value


# Addresses and prefixes are parsed each time a stored document is validated (every write
# loads its whole aggregate: 20,000 parses for a 10,000-rule ACL, a fifth of the time of
# adding one rule to it). The results are immutable; the texts repeat.
PARSED_TEXTS = 16384


@functools.lru_cache(maxsize=PARSED_TEXTS)
def parse_prefix(value: str) -> IPNetwork:
    """A CIDR prefix with no host bits set (``10.0.0.0/24``, ``fd00::/64``)."""
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a valid address prefix ({exc})") from None


@functools.lru_cache(maxsize=PARSED_TEXTS)
def parse_address(value: str) -> IPAddr:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"'{value}' is not a valid IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        # A zone names an interface of one machine: no address of the model has one.
        raise ValueError(f"'{value}' is not a valid IP address (it has a zone)")
    return address


def prefixes_overlap(a: IPNetwork, b: IPNetwork) -> bool:
    if isinstance(a, ipaddress.IPv4Network) and isinstance(b, ipaddress.IPv4Network):
        return a.overlaps(b)
    if isinstance(a, ipaddress.IPv6Network) and isinstance(b, ipaddress.IPv6Network):
        return a.overlaps(b)
    return False


def _canonical_prefix(value: str) -> str:
    if "/" not in value:
        raise ValueError(f"'{value}' is not a prefix in CIDR notation (address/length)")
    return str(parse_prefix(value))


def _canonical_address(value: str) -> str:
    return str(parse_address(value))


def parse_mac(value: str) -> int:
    """A MAC address in any common notation (``00155D3A5501``, dashes, colons) as an integer."""
    text = value.strip()
    if not re.fullmatch(r"[0-9A-Fa-f]{12}|([0-9A-Fa-f]{2}[-:]){5}[0-9A-Fa-f]{2}", text):
        raise ValueError(f"'{value}' is not a MAC address")
    return int(netaddr.EUI(text.replace("-", "").replace(":", ""), version=48))


def format_mac_dashed(mac: int) -> str:
    """The NC macPool form, ``00-1D-D8-B7-1C-00``."""
    return str(netaddr.EUI(mac, version=48, dialect=netaddr.mac_eui48))


def format_mac_bare(mac: int) -> str:
    """The NC networkInterface form, ``00155D3A5501``."""
    return str(netaddr.EUI(mac, version=48, dialect=netaddr.mac_bare))


def _canonical_dashed_mac(value: str) -> str:
    return format_mac_dashed(parse_mac(value))


def _canonical_bare_mac(value: str) -> str:
    return format_mac_bare(parse_mac(value))


PORT_MAX = 65535


def parse_port_range(value: str) -> list[tuple[int, int]]:
    """``*``, ``80``, ``0-65535`` or a comma list of those, as inclusive (low, high) pairs."""
    text = value.strip()
    if text == "*":
        return [(0, PORT_MAX)]
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?", part)
        if match is None:
            raise ValueError(f"'{value}' is not a port range ('*', '80', '1024-2048' or a list)")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high > PORT_MAX or low > high:
            raise ValueError(f"port range '{part.strip()}' must satisfy 0 <= low <= high <= 65535")
        ranges.append((low, high))
    return ranges


def _canonical_port_range(value: str) -> str:
    text = value.strip()
    if text == "*":
        return text
    return ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in parse_port_range(text))


def _blank_is_absent(value: object) -> object:
    """NC answers some unset addresses as ``""`` (a VnetLocal route's ``nextHopIpAddress``, a
    public IP frontend's ``privateIPAddress``, a peer's ``localIPAddress``), and a client
    putting back what it read sends them so: unset, like ``null``."""
    return None if isinstance(value, str) and not value.strip() else value


AddressPrefix = Annotated[str, AfterValidator(_canonical_prefix)]
IPAddress = Annotated[str, AfterValidator(_canonical_address)]
# An optional address member: ``""`` reads as absent.
OptionalIPAddress = Annotated[IPAddress | None, BeforeValidator(_blank_is_absent)]
DashedMac = Annotated[str, AfterValidator(_canonical_dashed_mac)]
BareMac = Annotated[str, AfterValidator(_canonical_bare_mac)]
PortRange = Annotated[str, AfterValidator(_canonical_port_range)]
Port = Annotated[int, IntRange(1, PORT_MAX)]
Percent = Annotated[int, IntRange(0, 100)]
# Hyper-V port counters (packets per second, flows) are 32-bit unsigned.
UInt32 = Annotated[int, IntRange(0, 2**32 - 1)]
# Megabits per second: 1 Tbit/s is above any NIC, and the agent's tc token bucket (whose burst is
# 20 ms at full rate, a 32-bit byte count) still holds it.
Bandwidth = Annotated[int, IntRange(0, 1_000_000)]
ShortText = Annotated[str, Field(max_length=1024)]
