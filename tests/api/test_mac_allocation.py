"""MAC addresses of networkInterfaces: static ones unique across the deployment, dynamic ones
drawn from macPools and kept, pools in use while NICs hold their MACs, exhaustion."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import mac_pool, nic
from tests.support.nbi import (
    Json,
    assert_absent,
    assert_delete_rejected,
    assert_put_rejected,
    delete,
    get,
    props,
    put,
)

POOL = "/macPools/DefaultMacPool"
NIC = "/networkInterfaces/WebVM1_Nic1"


async def create_pool(
    client: httpx.AsyncClient, start: str = "00-1D-D8-B7-1C-00", end: str = "00-1D-D8-B7-1C-FF"
) -> None:
    await put(client, POOL, mac_pool(start, end), status=201)


def allocated(pool: Json) -> int:
    count: int = props(pool)["usage"]["numberofMacAddressesAllocated"]
    return count


# -- static MACs --------------------------------------------------------------------------


async def test_static_mac_is_unique_across_the_deployment(client: httpx.AsyncClient) -> None:
    await create_pool(client)
    await put(client, NIC, nic(privateMacAddress="00155D3A5501"), status=201)
    dynamic = await put(client, "/networkInterfaces/dyn", nic(), status=201)
    held = props(dynamic)["privateMacAddress"]
    assert held == "001DD8B71C00"

    for mac, holder in (
        ("00:15:5D:3A:55:01", NIC),
        ("00-1D-D8-B7-1C-00", "/networkInterfaces/dyn"),
    ):
        error = await assert_put_rejected(
            client,
            "/networkInterfaces/other",
            nic(privateMacAddress=mac),
            code="MacAddressInUse",
            status=409,
            target="other/properties/privateMacAddress",
            watch=(NIC, "/networkInterfaces/dyn", POOL),
        )
        assert holder in error["message"]
    # An existing NIC cannot take another's MAC either, and keeps its own.
    await assert_put_rejected(
        client,
        NIC,
        nic(privateMacAddress=held),
        code="MacAddressInUse",
        status=409,
        target="WebVM1_Nic1/properties/privateMacAddress",
        watch=("/networkInterfaces/dyn", POOL),
    )
    # Once the holder is gone the MAC is free.
    await delete(client, NIC)
    await put(client, "/networkInterfaces/other", nic(privateMacAddress="00155D3A5501"), status=201)


async def test_changing_a_static_mac_frees_the_old_one(client: httpx.AsyncClient) -> None:
    await put(client, NIC, nic(privateMacAddress="00155D3A5501"), status=201)
    changed = await put(client, NIC, nic(privateMacAddress="00155D3A5502"), status=200)
    assert props(changed)["privateMacAddress"] == "00155D3A5502"
    await put(client, "/networkInterfaces/b", nic(privateMacAddress="00155D3A5501"), status=201)


@pytest.mark.parametrize(
    "mac",
    ["01005E000001", "33-33-00-00-00-01", "FF-FF-FF-FF-FF-FF", "00:00:00:00:00:00"],
    ids=["ipv4-multicast", "ipv6-multicast", "broadcast", "zero"],
)
async def test_static_mac_must_be_unicast(client: httpx.AsyncClient, mac: str) -> None:
    await assert_put_rejected(
        client,
        NIC,
        nic(privateMacAddress=mac),
        target="WebVM1_Nic1/properties/privateMacAddress",
    )
    await assert_absent(client, NIC)


# -- dynamic MACs -------------------------------------------------------------------------


async def test_dynamic_mac_comes_from_the_pool_and_is_kept(client: httpx.AsyncClient) -> None:
    await create_pool(client)
    first = await put(client, NIC, nic(), status=201)
    second = await put(
        client, "/networkInterfaces/b", nic(privateMacAllocationMethod="dynamic"), status=201
    )
    assert props(first)["privateMacAllocationMethod"] == "Dynamic"
    assert props(first)["privateMacAddress"] == "001DD8B71C00"
    assert props(second)["privateMacAddress"] == "001DD8B71C01"
    assert allocated(await get(client, POOL)) == 2

    # Kept over a fresh body, over the GET output, and when the client sends another MAC
    # while still asking for a Dynamic one.
    for body in (
        nic(),
        await get(client, NIC),
        nic(privateMacAllocationMethod="Dynamic", privateMacAddress="00155D000001"),
    ):
        again = await put(client, NIC, body, status=200)
        assert props(again)["privateMacAddress"] == "001DD8B71C00"
    assert allocated(await get(client, POOL)) == 2

    # Turning it Static with a MAC of its own gives the pool's MAC back.
    static = await put(client, NIC, nic(privateMacAddress="00155D3A5501"), status=200)
    assert props(static)["privateMacAllocationMethod"] == "Static"
    assert allocated(await get(client, POOL)) == 1


async def test_pool_holding_a_nic_mac_is_in_use(client: httpx.AsyncClient) -> None:
    await create_pool(client)
    await put(client, NIC, nic(), status=201)
    error = await assert_delete_rejected(client, POOL, target=POOL, watch=(NIC,))
    assert [d["target"] for d in error["details"]] == [NIC]

    # Deleting the NIC gives the MAC back: the next NIC gets it and the pool can go.
    await delete(client, NIC)
    assert allocated(await get(client, POOL)) == 0
    again = await put(client, "/networkInterfaces/b", nic(), status=201)
    assert props(again)["privateMacAddress"] == "001DD8B71C00"
    await delete(client, "/networkInterfaces/b")
    await delete(client, POOL)
    await delete(client, NIC, status=204)


async def test_static_mac_inside_a_pool_counts_and_is_skipped(client: httpx.AsyncClient) -> None:
    await create_pool(client, "00-1D-D8-B7-1C-00", "00-1D-D8-B7-1C-01")
    await put(client, "/networkInterfaces/a", nic(privateMacAddress="001DD8B71C00"), status=201)
    assert allocated(await get(client, POOL)) == 1
    with_pool_mac = await put(client, "/networkInterfaces/b", nic(), status=201)
    assert props(with_pool_mac)["privateMacAddress"] == "001DD8B71C01"
    # A static MAC outside every pool uses no pool.
    await put(client, "/networkInterfaces/c", nic(privateMacAddress="00155D3A5501"), status=201)
    assert allocated(await get(client, POOL)) == 2
    await assert_delete_rejected(client, POOL, target=POOL)


async def test_dynamic_mac_exhaustion(client: httpx.AsyncClient) -> None:
    # No pool at all.
    await assert_put_rejected(
        client,
        NIC,
        nic(),
        code="MacAddressExhausted",
        status=409,
        target="WebVM1_Nic1/properties/privateMacAddress",
    )
    # Two pools of one MAC each: the second is used when the first is full.
    await create_pool(client, "00-1D-D8-B7-1C-00", "00-1D-D8-B7-1C-00")
    await put(client, "/macPools/Second", mac_pool("02-00-00-00-00-01", "02-00-00-00-00-01"))
    a = await put(client, "/networkInterfaces/a", nic(), status=201)
    b = await put(client, "/networkInterfaces/b", nic(), status=201)
    assert {props(a)["privateMacAddress"], props(b)["privateMacAddress"]} == {
        "001DD8B71C00",
        "020000000001",
    }
    error = await assert_put_rejected(
        client,
        NIC,
        nic(),
        code="MacAddressExhausted",
        status=409,
        target="WebVM1_Nic1/properties/privateMacAddress",
        watch=(POOL, "/macPools/Second"),
    )
    assert NIC in error["message"]
    await assert_absent(client, NIC)
    # A NIC that already holds a MAC keeps it when the pools are full.
    await put(client, "/networkInterfaces/a", await get(client, "/networkInterfaces/a"), status=200)
    # Freeing one makes room again.
    await delete(client, "/networkInterfaces/b")
    created = await put(client, NIC, nic(), status=201)
    assert props(created)["privateMacAddress"] == props(b)["privateMacAddress"]


async def test_pool_cannot_shrink_below_held_macs(client: httpx.AsyncClient) -> None:
    await create_pool(client)
    await put(client, NIC, nic(), status=201)  # holds 001DD8B71C00
    for start, end in (
        ("00-1D-D8-B7-1C-80", "00-1D-D8-B7-1C-FF"),
        ("02-00-00-00-00-00", "02-00-00-00-00-FF"),
    ):
        error = await assert_put_rejected(
            client,
            POOL,
            mac_pool(start, end),
            code="ResourceInUse",
            status=409,
            target="DefaultMacPool/properties/startMacAddress",
            watch=(NIC,),
        )
        assert NIC in error["message"]
    # Growing it, or shrinking it around the held MAC, is fine.
    grown = await put(client, POOL, mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1F-FF"), status=200)
    assert allocated(grown) == 1
    await put(client, POOL, mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1C-00"), status=200)
    # Without the NIC the pool may go anywhere.
    await delete(client, NIC)
    moved = await put(client, POOL, mac_pool("02-00-00-00-00-00", "02-00-00-00-00-FF"), status=200)
    assert allocated(moved) == 0
