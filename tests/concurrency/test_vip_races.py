"""VIP races: many concurrent clients of a real controller on PostgreSQL, over sockets, creating
public IPs, load balancer frontends and NICs that draw from one pool or one subnet, binding one
public IP or inbound NAT rule, and changing the VIP pools while allocation goes on.

Every outcome is judged by status codes and by what GET shows afterwards: pairwise distinct
addresses, exactly as many winners as the pool holds, the proper 409 for the others, no 5xx,
and usage counts that match the resources that exist (nothing leaked). When a test fails, the
controller's log for that test is printed.
"""

from __future__ import annotations

import asyncio
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
    ref,
    virtual_network,
    virtual_subnet,
)
from tests.support.figures import Figures
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
from tests.support.slb import frontend, load_balancer, manager, public_ip

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

Json = dict[str, Any]
PUBLIC = "/logicalNetworks/pub/subnets/s"
PUBLIC_POOL = f"{PUBLIC}/ipPools/p"
SPARE_POOL = f"{PUBLIC}/ipPools/spare"
INTERNAL = "/virtualNetworks/vnet/subnets/s"
MANAGER = "/loadBalancerManager/config"
# The public pool: 41.40.40.10 to .33.
POOL_ADDRESSES = {f"41.40.40.{h}" for h in range(10, 34)}
CHURN_SECONDS = 5.0


@pytest.fixture
def controller(postgres_server: str) -> Iterator[ControllerServer]:
    with started_controller(postgres_server) as server:
        yield server


@pytest.fixture
async def nc(controller: ControllerServer) -> AsyncIterator[httpx.AsyncClient]:
    async with connected(controller) as http:
        await build_fabric(http)
        yield http


async def build_fabric(nc: httpx.AsyncClient) -> None:
    """A public VIP subnet with the pool .10-.33 (and a spare pool .40-.43 not yet a VIP pool),
    the manager naming the first, and a virtual subnet /27 for internal frontends and NICs."""
    await put_ok(nc, "/macPools/m", mac_pool("00-1D-D8-B7-00-00", "00-1D-D8-B7-0F-FF"))
    await put_ok(nc, "/logicalNetworks/HNVPA", provider_network())
    vnet = virtual_network(virtual_subnet("s", "24.30.3.0/27"), prefixes=("24.30.0.0/16",))
    await put_ok(nc, "/virtualNetworks/vnet", vnet)
    subnet = logical_subnet(
        "s",
        "41.40.40.0/26",
        ip_pool("p", "41.40.40.10", "41.40.40.33"),
        ip_pool("spare", "41.40.40.40", "41.40.40.43"),
        isPublic=True,
        defaultGateways=["41.40.40.1"],
    )
    await put_ok(nc, "/logicalNetworks/pub", logical_network(subnet))
    await put_ok(nc, MANAGER, manager(PUBLIC_POOL))


def one_frontend(subnet: str, address: str | None = None) -> Json:
    return load_balancer(frontends=(frontend("fe", subnet, address),))


def vip_of(resource: Json) -> str:
    """The address of a public IP, or of a load balancer's one frontend."""
    properties = resource["properties"]
    if "ipAddress" in properties:
        return str(properties["ipAddress"])
    return str(properties["frontendIPConfigurations"][0]["properties"]["privateIPAddress"])


async def pool_allocated(nc: httpx.AsyncClient, pool: str = PUBLIC_POOL) -> int:
    usage = (await nc.get(pool)).json()["properties"]["usage"]
    return int(usage["numberofIPAddressesAllocated"])


async def held_vips(nc: httpx.AsyncClient) -> dict[str, str]:
    """resourceRef -> VIP of every public IP and load balancer that exists."""
    held = {}
    for collection in ("/publicIPAddresses", "/loadBalancers"):
        response = await nc.get(collection)
        assert response.status_code == 200, response.text
        for resource in response.json()["value"]:
            held[resource["resourceRef"]] = vip_of(resource)
    return held


def shuffled(calls: Sequence[tuple[str, Json]]) -> list[tuple[str, Json]]:
    mixed = list(calls)
    random.shuffle(mixed)
    return mixed


# -- a. public IPs and frontends fill one pool ------------------------------------------------


async def test_public_ips_and_frontends_fill_a_vip_pool_exactly(
    nc: httpx.AsyncClient, figures: Figures
) -> None:
    calls = shuffled(
        [(f"/publicIPAddresses/pip-{i}", public_ip()) for i in range(24)]
        + [(f"/loadBalancers/lb-{i}", one_frontend(PUBLIC)) for i in range(24)]
    )
    started = time.monotonic()
    responses = await asyncio.gather(*(nc.put(path, json=body) for path, body in calls))
    figures.record(
        "48 concurrent VIP requests for 24 addresses answered in", time.monotonic() - started, "s"
    )
    assert_outcomes(responses, len(POOL_ADDRESSES), 48 - len(POOL_ADDRESSES), "IpAddressExhausted")
    won = [vip_of(r.json()) for r in responses if r.status_code == 201]
    assert_distinct(won, "VIP")
    assert set(won) == POOL_ADDRESSES
    held = await held_vips(nc)
    assert sorted(held.values()) == sorted(won)
    assert await pool_allocated(nc) == len(POOL_ADDRESSES)
    for response in responses:
        if response.status_code == 409:
            assert (await nc.get(response.request.url.path)).status_code == 404
    shown = (await nc.get(MANAGER)).json()["properties"]["vipPoolsInUse"]
    assert shown == [ref(PUBLIC_POOL)]


# -- b. internal frontends and NICs in one virtual subnet -------------------------------------


async def test_internal_frontends_and_nics_share_a_subnet_exactly(nc: httpx.AsyncClient) -> None:
    usable = {f"24.30.3.{h}" for h in range(2, 31)}
    calls = shuffled(
        [(f"/loadBalancers/ilb-{i}", one_frontend(INTERNAL)) for i in range(24)]
        + [
            (f"/networkInterfaces/nic-{i}", nic(ip_configuration("ip1", INTERNAL)))
            for i in range(24)
        ]
    )
    responses = await asyncio.gather(*(nc.put(path, json=body) for path, body in calls))
    assert_outcomes(responses, len(usable), 48 - len(usable), "IpAddressExhausted")
    won = []
    for response in responses:
        if response.status_code != 201:
            continue
        body = response.json()
        if "ipConfigurations" in body["properties"]:
            won.append(body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"])
        else:
            won.append(vip_of(body))
    assert_distinct(won, "address")
    assert set(won) == usable
    shown = (await nc.get(INTERNAL)).json()["properties"]["ipConfigurations"]
    assert len(shown) == sum(
        1 for r in responses if r.status_code == 201 and "/networkInterfaces/" in r.request.url.path
    )


# -- c. one Static VIP raced for amid Dynamic allocation --------------------------------------


async def test_one_static_vip_has_one_winner(nc: httpx.AsyncClient) -> None:
    wanted = "41.40.40.30"
    statics = [(f"/publicIPAddresses/s-{i}", public_ip(wanted)) for i in range(8)] + [
        (f"/loadBalancers/s-{i}", one_frontend(PUBLIC, wanted)) for i in range(8)
    ]
    dynamics = [(f"/publicIPAddresses/d-{i}", public_ip()) for i in range(16)]
    calls = shuffled([*statics, *dynamics])
    responses = await asyncio.gather(*(nc.put(path, json=body) for path, body in calls))
    by_path = {path: response for (path, _), response in zip(calls, responses, strict=True)}
    assert_outcomes([by_path[p] for p, _ in statics], 1, 15, "IpAddressInUse")
    assert_outcomes([by_path[p] for p, _ in dynamics], 16, 0, "IpAddressExhausted")
    held = await held_vips(nc)
    assert_distinct(list(held.values()), "VIP")
    assert list(held.values()).count(wanted) == 1
    assert await pool_allocated(nc) == 17


# -- d. one public IP, one inbound NAT rule: one binder each ----------------------------------


@pytest.mark.parametrize("member", ["publicIPAddress", "loadBalancerInboundNatRules"])
async def test_an_exclusive_target_is_bound_once(nc: httpx.AsyncClient, member: str) -> None:
    await put_ok(nc, "/publicIPAddresses/pip", public_ip())
    lb = one_frontend(PUBLIC)
    lb["properties"]["inboundNatRules"] = [
        {
            "resourceId": "rdp",
            "properties": {
                "protocol": "Tcp",
                "frontendPort": 3389,
                "frontendIPConfigurations": [ref("/loadBalancers/lb/frontendIPConfigurations/fe")],
            },
        }
    ]
    await put_ok(nc, "/loadBalancers/lb", lb)
    target = (
        "/publicIPAddresses/pip"
        if member == "publicIPAddress"
        else ("/loadBalancers/lb/inboundNatRules/rdp")
    )
    value: object = ref(target) if member == "publicIPAddress" else [ref(target)]
    calls = [
        (f"/networkInterfaces/vm-{i}", nic(ip_configuration("ip1", INTERNAL, **{member: value})))
        for i in range(16)
    ]
    responses = await asyncio.gather(*(nc.put(path, json=body) for path, body in calls))
    assert_outcomes(responses, 1, 15, "ResourceInUse")
    winner = next(r for r in responses if r.status_code == 201).json()["resourceRef"]
    shown = (await nc.get(target)).json()["properties"]
    bound = shown["ipConfiguration" if member == "publicIPAddress" else "backendIPConfiguration"]
    assert bound == ref(f"{winner}/ipConfigurations/ip1")


# -- e. release and reuse under churn ---------------------------------------------------------


async def test_release_and_reuse_under_churn_leaks_nothing(
    nc: httpx.AsyncClient, figures: Figures
) -> None:
    """32 clients create and delete public IPs and load balancers for a few seconds in a
    nearly full pool. Afterwards what is held matches what exists, and every address not held
    can be taken again (nothing leaked by failed or deleted writes)."""
    for i in range(16):
        await put_ok(nc, f"/publicIPAddresses/keep-{i}", public_ip())
    responses: list[httpx.Response] = []
    deadline = time.monotonic() + CHURN_SECONDS

    async def churn(worker: int) -> None:
        serial = 0
        while time.monotonic() < deadline:
            serial += 1
            if worker % 2:
                path, body = f"/publicIPAddresses/churn-{worker}-{serial}", public_ip()
            else:
                path, body = f"/loadBalancers/churn-{worker}-{serial}", one_frontend(PUBLIC)
            created = await nc.put(path, json=body)
            responses.append(created)
            if created.status_code != 201:
                await asyncio.sleep(random.uniform(0, 0.01))
                continue
            if random.random() < 0.05:
                continue  # this one stays
            responses.append(await nc.delete(path))

    await asyncio.gather(*(churn(worker) for worker in range(32)))

    assert_no_5xx(responses)
    unexpected = [
        r
        for r in responses
        if not 200 <= r.status_code < 300
        and not (r.status_code == 409 and error_code(r) == "IpAddressExhausted")
    ]
    assert not unexpected, describe(unexpected)
    outcomes = Counter(f"{r.request.method} {r.status_code}" for r in responses)
    figures.record("churn requests answered", len(responses) / CHURN_SECONDS, "per s")
    figures.record("churn VIPs created and deleted", outcomes["DELETE 200"], "")
    assert outcomes["DELETE 200"] > 32, outcomes

    held = await held_vips(nc)
    assert_distinct(list(held.values()), "VIP")
    assert set(held.values()) <= POOL_ADDRESSES
    assert await pool_allocated(nc) == len(held)
    free = POOL_ADDRESSES - set(held.values())
    refill = [
        await nc.put(f"/publicIPAddresses/refill-{i}", json=public_ip())
        for i in range(len(free) + 1)
    ]
    assert [r.status_code for r in refill] == [201] * len(free) + [409], describe(refill)
    assert error_code(refill[-1]) == "IpAddressExhausted"
    assert {vip_of(r.json()) for r in refill[:-1]} == free


# -- f. the VIP pools changing while VIPs are handed out --------------------------------------


ROUNDS = 12


async def test_a_vip_pool_leaving_races_allocation_from_it(nc: httpx.AsyncClient) -> None:
    """The manager swaps its only VIP pool (p) for another (spare) while 8 clients create
    Dynamic public IPs. Either the swap wins (and the public IPs come from spare) or a public
    IP does (and the swap is refused with 409 ResourceInUse): no VIP may end up held in a pool
    that is no VIP pool."""
    outcomes: Counter[str] = Counter()
    for round_ in range(ROUNDS):
        swap_delay, delays = head_starts(round_, 8, 0.03)
        creations = [
            later(delay, nc.put(f"/publicIPAddresses/r{round_}-{i}", json=public_ip()))
            for i, delay in enumerate(delays)
        ]
        swapped, *created = await asyncio.gather(
            later(swap_delay, nc.put(MANAGER, json=manager(SPARE_POOL))), *creations
        )
        everything = [swapped, *created]
        assert_no_5xx(everything)
        assert swapped.status_code in (200, 409), describe(everything)
        pools = [
            p["resourceRef"] for p in (await nc.get(MANAGER)).json()["properties"]["vipIpPools"]
        ]
        held = await held_vips(nc)
        spare = {f"41.40.40.{h}" for h in range(40, 44)}
        allowed = spare if pools == [SPARE_POOL] else POOL_ADDRESSES
        assert set(held.values()) <= allowed, (pools, held, describe(everything))
        if swapped.status_code == 200:
            outcomes["swap won"] += 1
        else:
            outcomes["allocation won"] += 1
            assert error_code(swapped) == "ResourceInUse", describe(everything)
        # The next round starts from the pool p and no public IP.
        for path in held:
            assert (await nc.delete(path)).status_code == 200, path
        await put_ok(nc, MANAGER, manager(PUBLIC_POOL))
    print(f"outcomes over {ROUNDS} rounds: {dict(outcomes)}")
