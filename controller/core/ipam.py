"""Number arithmetic for the allocators (VSIDs, MACs, IP addresses), all as plain integers.

A pool is a sorted list of inclusive ranges. Allocators first try the value after the highest
one in use (cheap, and what sequential allocation hits), then look for the first gap; these
functions are the pure parts of that, tested by property tests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from controller.core.values import IPNetwork

Range = tuple[int, int]


def normalise(ranges: Iterable[Range]) -> list[Range]:
    """Sorted, merged, non-empty ranges."""
    merged: list[Range] = []
    for low, high in sorted(r for r in ranges if r[0] <= r[1]):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def without(ranges: Sequence[Range], points: Iterable[int]) -> list[Range]:
    """``ranges`` minus the single values ``points``."""
    result = list(ranges)
    for point in sorted(set(points)):
        split: list[Range] = []
        for low, high in result:
            if low <= point <= high:
                split.extend(r for r in ((low, point - 1), (point + 1, high)) if r[0] <= r[1])
            else:
                split.append((low, high))
        result = split
    return result


def contains(ranges: Sequence[Range], value: int) -> bool:
    return any(low <= value <= high for low, high in ranges)


def size(ranges: Sequence[Range]) -> int:
    return sum(high - low + 1 for low, high in ranges)


def next_after(ranges: Sequence[Range], value: int | None) -> int | None:
    """The smallest member of ``ranges`` above ``value`` (the first member when None)."""
    for low, high in ranges:
        if value is None or value < low:
            return low
        if value < high:
            return value + 1
    return None


def first_free(ranges: Sequence[Range], used: Iterable[int]) -> int | None:
    """The smallest member of ``ranges`` not in ``used`` (``used`` in ascending order)."""
    iterator = iter(used)
    taken = next(iterator, None)
    for low, high in ranges:
        candidate = low
        while candidate <= high:
            while taken is not None and taken < candidate:
                taken = next(iterator, None)
            if taken != candidate:
                return candidate
            candidate += 1
    return None


def subnet_host_range(network: IPNetwork) -> Range:
    """Addresses a virtual subnet hands out: not the network address, not the first address
    (the subnet's gateway) and, for IPv4, not the broadcast address."""
    first = int(network.network_address)
    last = int(network.broadcast_address)
    if network.version == 4 and network.num_addresses > 2:
        last -= 1
    return first + 2, last


def reserved_of_subnet(network: IPNetwork) -> set[int]:
    """Addresses of a subnet no one may take: network, gateway (first) and broadcast."""
    first = int(network.network_address)
    reserved = {first, first + 1}
    if network.version == 4:
        reserved.add(int(network.broadcast_address))
    return {a for a in reserved if a in range(first, int(network.broadcast_address) + 1)}


def address_text(value: int, version: int) -> str:
    address = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
    return str(address)
