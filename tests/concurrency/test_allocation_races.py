"""Allocation races: many concurrent clients of a real controller on PostgreSQL, over sockets,
competing for the addresses of one subnet, the MACs of a macPool and the VSIDs of the range.

Each test starts its own controller on a fresh database (macPools and the VSID range are global,
so tests must not see each other's). Every outcome is judged by status codes and by what GET
shows afterwards: pairwise distinct values, exactly as many winners as there are values, the
proper 409 for the others, no 5xx, and usage counts and back-references that match the
resources that exist. Two tests race a subnet or a macPool shrinking against allocation from
it: nothing may end up held outside it. When a test fails, the controller's log for that test
is printed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest

from tests.support.bodies import (
    ip_configuration,
    ip_pool,
    logical_network,
    logical_subnet,
    mac_pool,
    nic,
    provider_network,
    virtual_network,
    virtual_subnet,
)
from tests.support.races import (
    assert_distinct,
    assert_no_5xx,
    assert_outcomes,
    connected,
    describe,
    error_code,
    head_starts,
    later,
    put_ok,
    started_controller,
)
from tests.support.server import ControllerServer

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

CLIENTS = 32
Json = dict[str, Any]
PROVIDER = "/logicalNetworks/provider"
MAC_BASE = 0x00_1D_D8_B7_00_00


# -- a controller per test, and its clients ---------------------------------------------------


@pytest.fixture
def controller(postgres_server: str) -> Iterator[ControllerServer]:
    with started_controller(postgres_server) as server:
        yield server


@pytest.fixture
async def nc(controller: ControllerServer) -> AsyncIterator[httpx.AsyncClient]:
    async with connected(controller) as http:
        yield http


# -- judging responses ------------------------------------------------------------------------


def addresses_of(network: str) -> set[str]:
    """The addresses a virtual subnet of ``network`` hands out: all but the network address,
    the first (gateway) address and the broadcast address."""
    subnet = ipaddress.ip_network(network)
    return {str(a) for a in subnet} - {str(subnet[0]), str(subnet[1]), str(subnet[-1])}


def mac_text(value: int) -> str:
    return "-".join(f"{value:012X}"[i : i + 2] for i in range(0, 12, 2))


def bare_mac(value: int) -> str:
    return f"{value:012X}"


def one_dynamic(subnet: str) -> Json:
    """A NIC with one Dynamic ipConfiguration ``ip1`` in ``subnet``."""
    return nic(ip_configuration("ip1", subnet))


def config_address(resource: Json, config: str = "ip1") -> str:
    for item in resource["properties"]["ipConfigurations"]:
        if item["resourceId"] == config:
            address = item["properties"]["privateIPAddress"]
            assert isinstance(address, str)
            return address
    raise AssertionError(f"no ipConfiguration {config} in {resource['resourceRef']}")


# -- setup ------------------------------------------------------------------------------------


async def virtual_subnet_at(nc: httpx.AsyncClient, name: str, space: str, prefix: str) -> str:
    """A virtualNetwork ``name`` (over the provider network, created when missing) with one
    subnet ``s1`` of ``prefix``; returns the subnet's path."""
    if (await nc.get(PROVIDER)).status_code == 404:
        await put_ok(nc, PROVIDER, provider_network())
    body = virtual_network(
        virtual_subnet("s1", prefix), prefixes=(space,), logical_network_path=PROVIDER
    )
    await put_ok(nc, f"/virtualNetworks/{name}", body)
    return f"/virtualNetworks/{name}/subnets/s1"


async def create_mac_pool(nc: httpx.AsyncClient, count: int, resource_id: str = "pool") -> str:
    path = f"/macPools/{resource_id}"
    await put_ok(nc, path, mac_pool(mac_text(MAC_BASE), mac_text(MAC_BASE + count - 1)))
    return path


async def mac_pool_allocated(nc: httpx.AsyncClient, path: str) -> int:
    usage = (await nc.get(path)).json()["properties"]["usage"]
    count = usage["numberofMacAddressesAllocated"]
    assert isinstance(count, int)
    return count


async def all_nics(nc: httpx.AsyncClient) -> list[Json]:
    response = await nc.get("/networkInterfaces")
    assert response.status_code == 200, response.text
    value: list[Json] = response.json()["value"]
    return value


def held_in(nics: Sequence[Json], subnet: str) -> dict[str, str]:
    """ipConfiguration resourceRef -> address, for every ipConfiguration in ``subnet``."""
    held = {}
    for resource in nics:
        for config in resource["properties"].get("ipConfigurations", []):
            if config["properties"]["subnet"]["resourceRef"].lower() == subnet.lower():
                held[config["resourceRef"]] = config["properties"]["privateIPAddress"]
    return held


async def back_references(nc: httpx.AsyncClient, subnet: str) -> set[str]:
    shown = await nc.get(subnet)
    assert shown.status_code == 200, shown.text
    return {r["resourceRef"] for r in shown.json()["properties"]["ipConfigurations"]}


# -- a. Dynamic addresses and MACs of one small subnet ----------------------------------------


async def test_concurrent_dynamic_addresses_fill_a_subnet_exactly(nc: httpx.AsyncClient) -> None:
    prefix = "10.1.0.0/27"
    usable = addresses_of(prefix)
    assert len(usable) == 29
    subnet = await virtual_subnet_at(nc, "vn-a", "10.1.0.0/16", prefix)
    pool = await create_mac_pool(nc, 256)
    clients = 48
    responses = await asyncio.gather(
        *(
            nc.put(f"/networkInterfaces/nic-{i}", json=nic(ip_configuration("ip1", subnet)))
            for i in range(clients)
        )
    )
    assert_outcomes(responses, len(usable), clients - len(usable), "IpAddressExhausted")
    won = [r.json() for r in responses if r.status_code == 201]
    addresses = [config_address(body) for body in won]
    assert_distinct(addresses, "address")
    # Every usable address is held, so none of network, gateway or broadcast is.
    assert set(addresses) == usable
    assert not {"10.1.0.0", "10.1.0.1", "10.1.0.31"} & set(addresses)
    macs = [body["properties"]["privateMacAddress"] for body in won]
    assert_distinct(macs, "MAC")
    assert all(MAC_BASE <= int(mac, 16) < MAC_BASE + 256 for mac in macs), macs

    nics = await all_nics(nc)
    assert sorted(n["resourceId"] for n in nics) == sorted(b["resourceId"] for b in won)
    held = held_in(nics, subnet)
    assert held == {f"{b['resourceRef']}/ipConfigurations/ip1": config_address(b) for b in won}
    assert await back_references(nc, subnet) == set(held)
    assert await mac_pool_allocated(nc, pool) == len(won)
    for response in responses:
        if response.status_code == 409:
            assert (await nc.get(response.request.url.path)).status_code == 404
    # Full stays full.
    late = await nc.put("/networkInterfaces/late", json=nic(ip_configuration("ip1", subnet)))
    assert late.status_code == 409, late.text
    assert error_code(late) == "IpAddressExhausted"


async def test_endpoints_added_at_their_uris_fill_a_subnet_exactly(
    nc: httpx.AsyncClient,
) -> None:
    """A container host's endpoints, each PUT at its own ipConfiguration URI (written alone,
    service/alone.py) at once: Dynamic ones take distinct addresses until the subnet is full,
    and of the Static ones asking for one address, one at most wins; a loser is told who
    holds it (400 naming the sibling that asked first, or 409 when a Dynamic one got it)."""
    prefix = "10.5.0.0/27"
    usable = addresses_of(prefix)
    subnet = await virtual_subnet_at(nc, "vn-alone", "10.5.0.0/16", prefix)
    await create_mac_pool(nc, 16)
    path = "/networkInterfaces/containers"
    await put_ok(nc, path, nic(ip_configuration("ip0", subnet)))
    wanted = "10.5.0.20"
    dynamic, static = [f"d{i}" for i in range(36)], [f"s{i}" for i in range(4)]

    async def add(config: str) -> httpx.Response:
        address = wanted if config in static else None
        body = ip_configuration(config, subnet, address)
        return await nc.put(f"{path}/ipConfigurations/{config}", json=body)

    names = random.sample(dynamic + static, len(dynamic) + len(static))
    responses = dict(zip(names, await asyncio.gather(*(add(n) for n in names)), strict=True))
    assert_no_5xx(list(responses.values()))
    won = sorted(n for n, r in responses.items() if r.status_code == 201)
    assert len(won) == len(usable) - 1, describe(list(responses.values()))
    assert {error_code(responses[n]) for n in dynamic if n not in won} <= {"IpAddressExhausted"}
    static_won = [n for n in static if n in won]
    assert len(static_won) <= 1
    for name in static:
        if name in won:
            continue
        response = responses[name]
        if static_won:
            assert error_code(response) == "InvalidInput", response.text
            assert f"'{static_won[0]}'" in response.json()["error"]["message"]
        else:
            assert error_code(response) == "IpAddressInUse", response.text

    shown = (await nc.get(path)).json()
    configs = {
        c["resourceId"]: c["properties"]["privateIPAddress"]
        for c in shown["properties"]["ipConfigurations"]
    }
    assert sorted(configs) == sorted(["ip0", *won])
    assert_distinct(list(configs.values()), "address")
    assert set(configs.values()) == usable
    if static_won:
        assert configs[static_won[0]] == wanted
    assert await back_references(nc, subnet) == {f"{path}/ipConfigurations/{c}" for c in configs}


# -- b. a macPool running out ------------------------------------------------------------------


async def test_concurrent_dynamic_macs_exhaust_a_mac_pool_exactly(nc: httpx.AsyncClient) -> None:
    pool = await create_mac_pool(nc, 16)
    clients = 40
    responses = await asyncio.gather(
        *(nc.put(f"/networkInterfaces/nic-{i}", json=nic()) for i in range(clients))
    )
    assert_outcomes(responses, 16, clients - 16, "MacAddressExhausted")
    won = [r.json() for r in responses if r.status_code == 201]
    macs = [body["properties"]["privateMacAddress"] for body in won]
    assert_distinct(macs, "MAC")
    assert set(macs) == {bare_mac(MAC_BASE + i) for i in range(16)}
    assert all(body["properties"]["privateMacAllocationMethod"] == "Dynamic" for body in won)
    nics = await all_nics(nc)
    assert {n["resourceId"]: n["properties"]["privateMacAddress"] for n in nics} == {
        b["resourceId"]: b["properties"]["privateMacAddress"] for b in won
    }
    assert await mac_pool_allocated(nc, pool) == 16


# -- c. the VSID range running out -------------------------------------------------------------


async def test_concurrent_virtual_subnets_exhaust_the_vsid_range_exactly(
    postgres_server: str,
) -> None:
    vsids = range(7000, 7020)
    clients = 36
    env = {"SDNC_VSID_MIN": "7000", "SDNC_VSID_MAX": "7019"}
    with started_controller(postgres_server, **env) as server:
        async with connected(server) as nc:
            await put_ok(nc, PROVIDER, provider_network())
            bodies = {
                f"/virtualNetworks/vn-{i}": virtual_network(
                    virtual_subnet("s1", f"10.{i}.1.0/24"),
                    prefixes=(f"10.{i}.0.0/16",),
                    logical_network_path=PROVIDER,
                )
                for i in range(clients)
            }
            responses = await asyncio.gather(
                *(nc.put(path, json=body) for path, body in bodies.items())
            )
            assert_outcomes(responses, len(vsids), clients - len(vsids), "VsidExhausted")
            won = {
                r.request.url.path.removeprefix("/networking/v1"): r.json()["properties"]
                for r in responses
                if r.status_code == 201
            }
            given = [props["subnets"][0]["properties"]["vsid"] for props in won.values()]
            assert sorted(given) == list(vsids)
            listed = (await nc.get("/virtualNetworks")).json()["value"]
            assert {v["resourceRef"] for v in listed} == set(won)
            shown = {
                v["resourceRef"]: v["properties"]["subnets"][0]["properties"]["vsid"]
                for v in listed
            }
            assert shown == {ref: p["subnets"][0]["properties"]["vsid"] for ref, p in won.items()}
            for path in set(bodies) - set(won):
                assert (await nc.get(path)).status_code == 404
                assert (await nc.get(f"{path}/subnets/s1")).status_code == 404


# -- d. one Static address raced for while Dynamic allocation goes on --------------------------


@pytest.mark.parametrize("static_host", [45, 50, 62])
async def test_static_address_race_amid_dynamic_allocation(
    nc: httpx.AsyncClient, static_host: int
) -> None:
    """16 clients want 10.2.0.<static_host> while 40 others take Dynamic addresses of the
    same /26 (.2 to .62). Dynamic allocation goes up from .2 and cannot reach the static
    address on its own before 40 allocations, so a Static client always wins it, once; once it
    is held, Dynamic allocation must step over it (at the top, .62, by searching the gaps)."""
    prefix = "10.2.0.0/26"
    usable = addresses_of(prefix)
    subnet = await virtual_subnet_at(nc, "vn-d", "10.2.0.0/16", prefix)
    await create_mac_pool(nc, 256)
    wanted = f"10.2.0.{static_host}"
    statics = {
        f"/networkInterfaces/static-{i}": nic(ip_configuration("ip1", subnet, wanted))
        for i in range(16)
    }
    dynamics = {
        f"/networkInterfaces/dynamic-{i}": nic(ip_configuration("ip1", subnet)) for i in range(40)
    }
    calls = [*statics.items(), *dynamics.items()]
    random.shuffle(calls)
    responses = await asyncio.gather(*(nc.put(path, json=body) for path, body in calls))
    by_path = {path: response for (path, _), response in zip(calls, responses, strict=True)}
    static_responses = [by_path[p] for p in statics]
    dynamic_responses = [by_path[p] for p in dynamics]
    assert_outcomes(static_responses, 1, 15, "IpAddressInUse")
    assert_outcomes(dynamic_responses, 40, 0, "IpAddressExhausted")
    winner = next(r.json() for r in static_responses if r.status_code == 201)
    assert config_address(winner) == wanted
    dynamic_addresses = [config_address(r.json()) for r in dynamic_responses]
    assert wanted not in dynamic_addresses
    assert_distinct([*dynamic_addresses, wanted], "address")
    assert set(dynamic_addresses) <= usable

    nics = await all_nics(nc)
    held = held_in(nics, subnet)
    assert len(held) == 41
    assert_distinct(list(held.values()), "address")
    assert [ref for ref, address in held.items() if address == wanted] == [
        f"{winner['resourceRef']}/ipConfigurations/ip1"
    ]
    assert await back_references(nc, subnet) == set(held)


# -- e. release and reuse under churn ----------------------------------------------------------


CHURN_SECONDS = 5.0


async def test_release_and_reuse_under_churn_leaks_nothing(nc: httpx.AsyncClient) -> None:
    """32 clients create and delete NICs (and add and delete a second ipConfiguration at its
    child URI) for a few seconds in a nearly full virtual subnet and a nearly full logical
    subnet's ipPool. Afterwards what is held matches what exists, and every address not held
    by an existing ipConfiguration can be taken again (nothing leaked)."""
    virtual_prefix = "10.3.0.0/27"
    virtual = await virtual_subnet_at(nc, "vn-e", "10.3.0.0/16", virtual_prefix)
    await put_ok(
        nc,
        "/logicalNetworks/vlan",
        logical_network(
            logical_subnet("ls", "10.4.0.0/24", ip_pool("pool", "10.4.0.10", "10.4.0.33"), vlanID=7)
        ),
    )
    logical = "/logicalNetworks/vlan/subnets/ls"
    ip_pool_path = f"{logical}/ipPools/pool"
    usable = {
        virtual: addresses_of(virtual_prefix),
        logical: {f"10.4.0.{h}" for h in range(10, 34)},
    }
    pool = await create_mac_pool(nc, 4096)
    # Leave 8 addresses free in each subnet.
    for subnet, prefill in ((virtual, 21), (logical, 16)):
        for i in range(prefill):
            name = f"keep-{subnet.split('/')[2]}-{i}"
            await put_ok(nc, f"/networkInterfaces/{name}", nic(ip_configuration("ip1", subnet)))

    responses: list[httpx.Response] = []
    deadline = time.monotonic() + CHURN_SECONDS

    async def churn(worker: int) -> None:
        subnet = (virtual, logical)[worker % 2]
        serial = 0
        while time.monotonic() < deadline:
            serial += 1
            path = f"/networkInterfaces/churn-{worker}-{serial}"
            created = await nc.put(path, json=nic(ip_configuration("ip1", subnet)))
            responses.append(created)
            if created.status_code != 201:
                await asyncio.sleep(random.uniform(0, 0.01))
                continue
            second = await nc.put(
                f"{path}/ipConfigurations/ip2", json=ip_configuration(None, subnet)
            )
            responses.append(second)
            if second.status_code == 201 and random.random() < 0.5:
                responses.append(await nc.delete(f"{path}/ipConfigurations/ip2"))
            if random.random() < 0.03:
                continue  # this NIC stays
            responses.append(await nc.delete(path))

    await asyncio.gather(*(churn(worker) for worker in range(CLIENTS)))

    assert_no_5xx(responses)
    unexpected = [
        r
        for r in responses
        if not 200 <= r.status_code < 300
        and not (r.status_code == 409 and error_code(r) == "IpAddressExhausted")
    ]
    assert not unexpected, describe(unexpected)
    outcomes = Counter(f"{r.request.method} {r.status_code}" for r in responses)
    print(f"churn outcomes: {dict(outcomes)}")
    assert outcomes["DELETE 200"] > CLIENTS, outcomes

    nics = await all_nics(nc)
    for subnet in (virtual, logical):
        held = held_in(nics, subnet)
        assert_distinct(list(held.values()), f"address of {subnet}")
        assert set(held.values()) <= usable[subnet]
        assert await back_references(nc, subnet) == set(held)
    pool_usage = (await nc.get(ip_pool_path)).json()["properties"]["usage"]
    assert pool_usage["numberofIPAddressesAllocated"] == len(held_in(nics, logical))
    assert await mac_pool_allocated(nc, pool) == len(nics)
    assert_distinct([n["properties"]["privateMacAddress"] for n in nics], "MAC")

    # Nothing leaked: every address no ipConfiguration holds can be taken again.
    for subnet in (virtual, logical):
        free = usable[subnet] - set(held_in(nics, subnet).values())
        refill = [
            await nc.put(
                f"/networkInterfaces/refill-{subnet.split('/')[2]}-{i}",
                json=nic(ip_configuration("ip1", subnet)),
            )
            for i in range(len(free) + 1)
        ]
        assert [r.status_code for r in refill] == [201] * len(free) + [409], describe(refill)
        assert error_code(refill[-1]) == "IpAddressExhausted"
        assert {config_address(r.json()) for r in refill[:-1]} == free
    nics = await all_nics(nc)
    for subnet in (virtual, logical):
        held = held_in(nics, subnet)
        assert sorted(held.values()) == sorted(usable[subnet])
        assert await back_references(nc, subnet) == set(held)
    pool_usage = (await nc.get(ip_pool_path)).json()["properties"]["usage"]
    assert pool_usage["numberofIPAddressesAllocated"] == len(usable[logical])


# -- f. a subnet shrinking while its addresses are handed out ----------------------------------


ROUNDS = 16


async def test_subnet_shrink_racing_dynamic_allocation_keeps_addresses_inside(
    nc: httpx.AsyncClient,
) -> None:
    """A virtualNetwork re-PUT shrinks a /24 subnet to the /28 that its held addresses fill
    (.2 to .14) while 8 clients take Dynamic addresses (.15 and up) in it. Either the shrink
    wins (and the 8 find the /28 full) or an allocation does (and the shrink is refused with
    409 ResourceInUse): no address may end up held outside the subnet's usable addresses."""
    await create_mac_pool(nc, 4096)
    outcomes: Counter[str] = Counter()
    broken: list[str] = []
    for round_ in range(ROUNDS):
        space = f"10.{100 + round_}.0.0/16"
        wide, narrow = f"10.{100 + round_}.0.0/24", f"10.{100 + round_}.0.0/28"
        name = f"vn-f{round_}"
        subnet = await virtual_subnet_at(nc, name, space, wide)
        fill = nic(*(ip_configuration(f"ip{i}", subnet) for i in range(13)))
        await put_ok(nc, f"/networkInterfaces/fill-{round_}", fill)
        shrink = virtual_network(
            virtual_subnet("s1", narrow), prefixes=(space,), logical_network_path=PROVIDER
        )

        shrink_delay, delays = head_starts(round_, 8, 0.03)
        creations = [
            later(delay, nc.put(f"/networkInterfaces/f{round_}-{i}", json=one_dynamic(subnet)))
            for i, delay in enumerate(delays)
        ]
        shrunk, *created = await asyncio.gather(
            later(shrink_delay, nc.put(f"/virtualNetworks/{name}", json=shrink)), *creations
        )
        everything = [shrunk, *created]
        assert_no_5xx(everything)
        assert shrunk.status_code in (200, 409), describe(everything)
        won = [r for r in created if r.status_code == 201]
        assert all(error_code(r) == "IpAddressExhausted" for r in created if r not in won)
        prefix = (await nc.get(subnet)).json()["properties"]["addressPrefix"]
        held = held_in(await all_nics(nc), subnet)
        misplaced = {ref: a for ref, a in held.items() if a not in addresses_of(prefix)}
        if shrunk.status_code == 200:
            outcomes["shrink won"] += 1
            if won or misplaced:
                broken.append(
                    f"round {round_}: the shrink to {narrow} answered 200, yet {len(won)} "
                    f"allocation(s) answered 201 and {prefix} now has these ipConfigurations "
                    f"on addresses it does not hand out: {misplaced}\n{describe(everything)}"
                )
        else:
            outcomes["allocation won"] += 1
            assert error_code(shrunk) == "ResourceInUse", describe(everything)
            assert won, describe(everything)
            assert not misplaced, describe(everything)
    print(f"outcomes over {ROUNDS} rounds: {dict(outcomes)}; broken rounds: {len(broken)}")
    assert not broken, "\n".join(broken)


# -- g. a macPool shrinking while its MACs are handed out --------------------------------------


async def test_mac_pool_shrink_racing_dynamic_macs_keeps_macs_inside(
    nc: httpx.AsyncClient,
) -> None:
    """A macPool of 64 MACs is re-PUT as the 16 that NICs hold while 8 clients draw Dynamic
    MACs from it. Either the shrink wins (and the 8 find no free MAC) or a draw does (and the
    shrink is refused with 409 ResourceInUse): no NIC may hold a MAC of the pool outside its
    range."""
    outcomes: Counter[str] = Counter()
    broken: list[str] = []
    for round_ in range(ROUNDS):
        pool = f"/macPools/pool-{round_}"
        base = MAC_BASE + 0x1_0000 * (round_ + 1)
        await put_ok(nc, pool, mac_pool(mac_text(base), mac_text(base + 63)))
        names = [f"/networkInterfaces/g{round_}-fill-{i}" for i in range(16)]
        for path in names:
            await put_ok(nc, path, nic())

        draws = [f"/networkInterfaces/g{round_}-{i}" for i in range(8)]
        shrink_delay, delays = head_starts(round_, len(draws), 0.02)
        shrink = nc.put(pool, json=mac_pool(mac_text(base), mac_text(base + 15)))
        shrunk, *created = await asyncio.gather(
            later(shrink_delay, shrink),
            *(later(d, nc.put(path, json=nic())) for path, d in zip(draws, delays, strict=True)),
        )
        everything = [shrunk, *created]
        assert_no_5xx(everything)
        assert shrunk.status_code in (200, 409), describe(everything)
        won = [r for r in created if r.status_code == 201]
        assert all(error_code(r) == "MacAddressExhausted" for r in created if r not in won)
        shown = (await nc.get(pool)).json()["properties"]
        low = int(shown["startMacAddress"].replace("-", ""), 16)
        high = int(shown["endMacAddress"].replace("-", ""), 16)
        macs = {
            n["resourceRef"]: int(n["properties"]["privateMacAddress"], 16)
            for n in await all_nics(nc)
        }
        outside = {ref: f"{m:012X}" for ref, m in macs.items() if not low <= m <= high}
        assert shown["usage"]["numberofMacAddressesAllocated"] == len(macs)
        if shrunk.status_code == 200:
            outcomes["shrink won"] += 1
            if won or outside:
                broken.append(
                    f"round {round_}: the shrink to {shown['startMacAddress']}.."
                    f"{shown['endMacAddress']} answered 200, yet {len(won)} draw(s) answered "
                    f"201 and these NICs hold MACs outside the pool: {outside}\n"
                    f"{describe(everything)}"
                )
        else:
            outcomes["draw won"] += 1
            assert error_code(shrunk) == "ResourceInUse", describe(everything)
            assert won, describe(everything)
            assert not outside, describe(everything)
        # The next round starts with no NIC and no pool.
        for path in [*names, *draws]:
            assert (await nc.delete(path)).status_code in (200, 204), path
        assert (await nc.delete(pool)).status_code == 200
    print(f"outcomes over {ROUNDS} rounds: {dict(outcomes)}; broken rounds: {len(broken)}")
    assert not broken, "\n".join(broken)
