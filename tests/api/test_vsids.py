"""VSIDs (VxLAN VNIs) of virtual subnets: unique, from the configured range, stable across
re-PUTs, never taken from what a client echoes, released with their subnet, exhaustion."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from controller.app import create_app
from controller.settings import Settings
from controller.store.database import Database
from tests.support.bodies import provider_network, virtual_network, virtual_subnet
from tests.support.nbi import (
    Json,
    assert_absent,
    assert_put_rejected,
    delete,
    get,
    get_all,
    props,
    put,
    serve,
)

LN = "/logicalNetworks/HNVPA"
VNET = "/virtualNetworks/Fabrikam_VNet1"
WEB = f"{VNET}/subnets/Web"
APP = f"{VNET}/subnets/App"
VSID_DEFAULT_RANGE = range(4096, 16_777_215)


async def create_vnet(client: httpx.AsyncClient, *subnets: Json) -> Json:
    await put(client, LN, provider_network(), status=201)
    return await put(client, VNET, virtual_network(*subnets), status=201)


def vsids(network: Json) -> dict[str, int]:
    return {s["resourceId"]: props(s)["vsid"] for s in props(network)["subnets"]}


# -- VSIDs of the default range ---------------------------------------------------------


async def test_every_subnet_gets_its_own_vsid(client: httpx.AsyncClient) -> None:
    subnets = [virtual_subnet(f"s{i}", f"24.30.{i}.0/24") for i in range(1, 6)]
    network = await create_vnet(client, *subnets)
    other = await put(client, "/virtualNetworks/Other", virtual_network(*subnets[:2]), status=201)
    numbers = [*vsids(network).values(), *vsids(other).values()]
    assert len(set(numbers)) == 7
    assert all(n in VSID_DEFAULT_RANGE for n in numbers)
    # Reads agree with the PUT answers.
    assert [vsids(n) for n in await get_all(client, "/virtualNetworks")] == [
        vsids(network),
        vsids(other),
    ]


async def test_vsid_is_stable_across_re_puts(client: httpx.AsyncClient) -> None:
    web = virtual_subnet("Web", "24.30.1.0/24")
    created = await create_vnet(client, web, virtual_subnet("App", "24.30.2.0/24"))
    numbers = vsids(created)

    # Re-PUT of the GET output (read-modify-write), of a fresh body, with the subnet ids in
    # another casing and in another order, and of a subnet at its own URI.
    echoed = await put(client, VNET, await get(client, VNET), status=200)
    fresh = await put(
        client,
        VNET,
        virtual_network(
            virtual_subnet("app", "24.30.2.0/24"), virtual_subnet("WEB", "24.30.1.0/24")
        ),
        status=200,
    )
    child_put = await put(client, WEB, virtual_subnet("Web", "24.30.1.0/25"), status=200)
    for network in (echoed, fresh):
        assert vsids(network) == numbers
    assert props(child_put)["vsid"] == numbers["Web"]
    assert vsids(await get(client, VNET)) == numbers


async def test_echoed_vsid_is_ignored(client: httpx.AsyncClient) -> None:
    created = await create_vnet(client, virtual_subnet("Web", "24.30.1.0/24"))
    number = vsids(created)["Web"]
    # A client sending a VSID of its own, or another subnet's, changes nothing.
    body = virtual_network(virtual_subnet("Web", "24.30.1.0/24", vsid=99))
    body["properties"]["subnets"].append(virtual_subnet("App", "24.30.2.0/24", vsid=str(number)))
    updated = await put(client, VNET, body, status=200)
    assert vsids(updated)["Web"] == number
    assert vsids(updated)["App"] != number
    assert vsids(updated)["App"] in VSID_DEFAULT_RANGE
    app = await put(client, APP, virtual_subnet("App", "24.30.2.0/24", Vsid=number), status=200)
    assert props(app)["vsid"] == vsids(updated)["App"]


async def test_new_subnet_gets_a_new_vsid(
    client: httpx.AsyncClient,
) -> None:
    created = await create_vnet(client, virtual_subnet("Web", "24.30.1.0/24"))
    app = await put(client, APP, virtual_subnet("App", "24.30.2.0/24"), status=201)
    assert props(app)["vsid"] != vsids(created)["Web"]

    # Dropped from a re-PUT of the network: the subnet and its VSID go.
    kept = await put(
        client, VNET, virtual_network(virtual_subnet("Web", "24.30.1.0/24")), status=200
    )
    assert vsids(kept) == vsids(created)
    await assert_absent(client, APP)
    readded = await put(client, APP, virtual_subnet("App", "24.30.2.0/24"), status=201)
    assert props(readded)["vsid"] != vsids(created)["Web"]

    await delete(client, APP)
    await delete(client, APP, status=204)
    await delete(client, VNET)
    await assert_absent(client, WEB)
    await delete(client, VNET, status=204)


@pytest.fixture
async def small_vsid_client(
    database_url: str, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """A controller handing out VSIDs 5000-5002 only."""
    settings = Settings(database_url=database_url, vsid_min=5000, vsid_max=5002)
    async with serve(create_app(settings, database=database)) as http:
        yield http


async def test_vsids_come_from_the_configured_range_until_it_is_exhausted(
    small_vsid_client: httpx.AsyncClient,
) -> None:
    client = small_vsid_client
    network = await create_vnet(
        client, virtual_subnet("a", "24.30.1.0/24"), virtual_subnet("b", "24.30.2.0/24")
    )
    c = await put(client, f"{VNET}/subnets/c", virtual_subnet("c", "24.30.3.0/24"), status=201)
    assert sorted([*vsids(network).values(), props(c)["vsid"]]) == [5000, 5001, 5002]

    # A fourth subnet, at its own URI, in a network re-PUT, or in a new network: 409.
    await assert_put_rejected(
        client,
        f"{VNET}/subnets/d",
        virtual_subnet("d", "24.30.4.0/24"),
        code="VsidExhausted",
        status=409,
        target=f"{VNET}/subnets/d",
    )
    body = await get(client, VNET)
    body["properties"]["subnets"].append(virtual_subnet("d", "24.30.4.0/24"))
    await assert_put_rejected(
        client, VNET, body, code="VsidExhausted", status=409, target=f"{VNET}/subnets/d"
    )
    await assert_put_rejected(
        client,
        "/virtualNetworks/Other",
        virtual_network(virtual_subnet("x", "24.30.1.0/24")),
        code="VsidExhausted",
        status=409,
        target="/virtualNetworks/Other/subnets/x",
        watch=(VNET,),
    )
    # A network without subnets needs no VSID; re-PUTs of existing subnets need none either.
    await put(client, "/virtualNetworks/Other", virtual_network(), status=201)
    held = vsids(await get(client, VNET))
    assert vsids(await put(client, VNET, await get(client, VNET), status=200)) == held

    # A deleted subnet's VSID is handed out again...
    await delete(client, f"{VNET}/subnets/b")
    x = await put(
        client, "/virtualNetworks/Other/subnets/x", virtual_subnet("x", "24.30.9.0/24"), status=201
    )
    assert props(x)["vsid"] == held["b"]
    # ... and so is the VSID of a subnet dropped from a re-PUT of its network.
    body = virtual_network(virtual_subnet("a", "24.30.1.0/24"))
    assert vsids(await put(client, VNET, body, status=200)) == {"a": held["a"]}
    y = await put(
        client, "/virtualNetworks/Other/subnets/y", virtual_subnet("y", "24.30.8.0/24"), status=201
    )
    assert props(y)["vsid"] == held["c"]


async def test_exhaustion_in_a_multi_subnet_put_keeps_nothing(
    small_vsid_client: httpx.AsyncClient,
) -> None:
    client = small_vsid_client
    await create_vnet(client, virtual_subnet("a", "24.30.1.0/24"))
    body = virtual_network(*(virtual_subnet(n, f"24.30.{i}.0/24") for i, n in enumerate("bcd", 2)))
    await assert_put_rejected(
        client,
        "/virtualNetworks/Other",
        body,
        code="VsidExhausted",
        status=409,
        target="/virtualNetworks/Other/subnets/d",
        watch=(VNET,),
    )
    # The two VSIDs the failed PUT had picked are still free.
    two = virtual_network(virtual_subnet("b", "24.30.2.0/24"), virtual_subnet("c", "24.30.3.0/24"))
    created = await put(client, "/virtualNetworks/Other", two, status=201)
    assert sorted(vsids(created).values()) == [5001, 5002]
