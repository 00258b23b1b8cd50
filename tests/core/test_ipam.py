"""The allocators' range arithmetic against a brute-force model: a pool of ranges is the plain
set of integers it covers, on small ranges where every member can be listed."""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core import ipam
from controller.core.ipam import Range

PROBE = settings(deadline=None, max_examples=300)
LIMIT = 60

values = st.integers(min_value=0, max_value=LIMIT)
# Empty (low > high) ranges included: normalise drops them.
any_ranges = st.lists(st.tuples(values, values), max_size=8)
points = st.sets(values, max_size=12)


def members(ranges: list[Range]) -> set[int]:
    return {value for low, high in ranges for value in range(low, high + 1)}


def assert_canonical(ranges: list[Range]) -> None:
    """Sorted, non-empty, neither overlapping nor touching."""
    assert all(low <= high for low, high in ranges), ranges
    for (_, high), (low, _) in itertools.pairwise(ranges):
        assert low > high + 1, ranges


@st.composite
def pools(draw: st.DrawFn) -> list[Range]:
    """A pool as the allocators get it: normalised ranges."""
    return ipam.normalise(draw(any_ranges))


@PROBE
@given(any_ranges)
def test_normalise_keeps_the_members_in_canonical_form(ranges: list[Range]) -> None:
    result = ipam.normalise(ranges)
    assert members(result) == members(ranges)
    assert_canonical(result)
    assert ipam.normalise(result) == result


@PROBE
@given(any_ranges, points)
def test_without_removes_exactly_the_points(ranges: list[Range], removed: set[int]) -> None:
    # Any ranges, even unsorted or empty ones: the members are what counts.
    assert members(ipam.without(ranges, removed)) == members(ranges) - removed


@PROBE
@given(pools(), points)
def test_without_keeps_a_pool_canonical(pool: list[Range], removed: set[int]) -> None:
    result = ipam.without(pool, removed)
    assert members(result) == members(pool) - removed
    assert_canonical(result)


@PROBE
@given(pools(), st.integers(min_value=-2, max_value=LIMIT + 2))
def test_contains_and_size(pool: list[Range], value: int) -> None:
    assert ipam.contains(pool, value) == (value in members(pool))
    assert ipam.size(pool) == len(members(pool))


@PROBE
@given(pools(), st.none() | st.integers(min_value=-2, max_value=LIMIT + 2))
def test_next_after_is_the_smallest_member_above(pool: list[Range], value: int | None) -> None:
    above = [m for m in members(pool) if value is None or m > value]
    assert ipam.next_after(pool, value) == (min(above) if above else None)


@PROBE
@given(pools(), st.lists(st.integers(min_value=-2, max_value=LIMIT + 2), max_size=20))
def test_first_free_is_the_smallest_unused_member(pool: list[Range], used: list[int]) -> None:
    # ``used`` comes ascending (duplicates and values outside the pool are harmless).
    free = members(pool) - set(used)
    assert ipam.first_free(pool, sorted(used)) == (min(free) if free else None)


@PROBE
@given(pools(), points)
def test_after_the_highest_then_first_gap_finds_a_free_member_whenever_there_is_one(
    pool: list[Range], held: set[int]
) -> None:
    """How an allocator combines them: the member after the highest one held, else the first
    gap. It finds a value exactly when one is free, and never a held one."""
    used = held & members(pool)
    candidate = ipam.next_after(pool, max(used, default=None))
    if candidate is None:
        candidate = ipam.first_free(pool, sorted(used))
    free = members(pool) - used
    if free:
        assert candidate in free
    else:
        assert candidate is None


@st.composite
def small_networks(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """IPv4 /24../32 and IPv6 /120../128 networks anywhere in their address space."""
    if draw(st.booleans()):
        prefix = draw(st.integers(min_value=24, max_value=32))
        address = draw(st.integers(min_value=0, max_value=2**32 - 1))
        return ipaddress.IPv4Network((address >> (32 - prefix) << (32 - prefix), prefix))
    prefix = draw(st.integers(min_value=120, max_value=128))
    address = draw(st.integers(min_value=0, max_value=2**128 - 1))
    return ipaddress.IPv6Network((address >> (128 - prefix) << (128 - prefix), prefix))


def model_reserved(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> set[int]:
    """Network address, gateway (the first address after it), IPv4 broadcast: those of them
    that are in the network at all."""
    everything = set(range(int(network.network_address), int(network.broadcast_address) + 1))
    first = int(network.network_address)
    named = {first, first + 1}
    if network.version == 4:
        named.add(int(network.broadcast_address))
    return everything & named


@PROBE
@given(small_networks())
def test_subnet_hosts_are_every_address_but_network_gateway_and_broadcast(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> None:
    everything = set(range(int(network.network_address), int(network.broadcast_address) + 1))
    reserved = ipam.reserved_of_subnet(network)
    assert reserved == model_reserved(network)
    low, high = ipam.subnet_host_range(network)
    hosts = set(range(low, high + 1))
    assert hosts == everything - reserved
    if network.version == 4 and network.prefixlen <= 30:
        assert (low, high) == (int(network[2]), int(network[-2]))
    for value in hosts:
        assert ipaddress.ip_address(ipam.address_text(value, network.version)) in network
