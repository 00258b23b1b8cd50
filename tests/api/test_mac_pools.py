"""macPools: MAC notations, canonical dashed form, unicast ranges, no overlap, usage."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import mac_pool
from tests.support.nbi import (
    assert_absent,
    assert_put_rejected,
    delete,
    get,
    get_all,
    ids,
    props,
    put,
)


async def test_sdn_express_default_pool_comes_back_dashed_with_its_usage(
    client: httpx.AsyncClient,
) -> None:
    body = mac_pool("001DD8B71C00", "001DD8B71FFF", resource_id="DefaultMacPool")
    created = await put(client, "/MacPools/DefaultMacPool", body, status=201)
    assert created["resourceRef"] == "/macPools/DefaultMacPool"
    assert props(created) == {
        "provisioningState": "Succeeded",
        "startMacAddress": "00-1D-D8-B7-1C-00",
        "endMacAddress": "00-1D-D8-B7-1F-FF",
        "usage": {"numberOfMacAddresses": 1024, "numberofMacAddressesAllocated": 0},
    }
    assert await get(client, "/macpools/defaultmacpool") == created


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("001DD8B71C00", "001dd8b71cff"),
        ("00-1D-D8-B7-1C-00", "00-1d-d8-b7-1c-ff"),
        ("00:1d:d8:b7:1c:00", "00:1D:D8:B7:1C:FF"),
        (" 00-1D-D8-B7-1C-00 ", "001DD8B71CFF"),
    ],
    ids=["bare", "dashed", "colons", "padded-and-mixed"],
)
async def test_every_mac_notation_is_stored_dashed_upper_case(
    client: httpx.AsyncClient, start: str, end: str
) -> None:
    created = await put(client, "/macPools/p", mac_pool(start, end))
    assert props(created)["startMacAddress"] == "00-1D-D8-B7-1C-00"
    assert props(created)["endMacAddress"] == "00-1D-D8-B7-1C-FF"
    assert props(created)["usage"]["numberOfMacAddresses"] == 256


async def test_single_address_pool(client: httpx.AsyncClient) -> None:
    created = await put(client, "/macPools/one", mac_pool("02-00-00-00-00-01", "02-00-00-00-00-01"))
    assert props(created)["usage"] == {
        "numberOfMacAddresses": 1,
        "numberofMacAddressesAllocated": 0,
    }


async def test_echoed_read_only_members_are_ignored(client: httpx.AsyncClient) -> None:
    body = {
        "resourceId": "p",
        "resourceRef": "/macPools/somethingElse",
        "instanceId": "00000000-0000-0000-0000-000000000000",
        "etag": 'W/"00000000-0000-0000-0000-000000000000"',
        "properties": {
            "provisioningState": "Failed",
            "StartMacAddress": "00-1D-D8-B7-1C-00",
            "EndMacAddress": "00-1D-D8-B7-1C-0F",
            "usage": {"numberOfMacAddresses": 99, "numberofMacAddressesAllocated": 7},
        },
    }
    created = await put(client, "/macPools/p", body)
    assert created["resourceRef"] == "/macPools/p"
    assert created["instanceId"] != "00000000-0000-0000-0000-000000000000"
    assert props(created)["provisioningState"] == "Succeeded"
    assert props(created)["usage"] == {
        "numberOfMacAddresses": 16,
        "numberofMacAddressesAllocated": 0,
    }


async def test_re_put_of_get_output_replaces_without_overlapping_itself(
    client: httpx.AsyncClient,
) -> None:
    created = await put(client, "/macPools/p", mac_pool("001DD8B71C00", "001DD8B71FFF"))
    rewritten = await put(client, "/macPools/p", await get(client, "/macPools/p"), status=200)
    assert props(rewritten) == props(created)
    assert rewritten["etag"] != created["etag"]
    shrunk = await put(client, "/macPools/p", mac_pool("001DD8B71C00", "001DD8B71C7F"), status=200)
    assert props(shrunk)["usage"]["numberOfMacAddresses"] == 128


async def test_adjacent_pools_do_not_overlap(client: httpx.AsyncClient) -> None:
    await put(client, "/macPools/a", mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1C-FF"))
    await put(client, "/macPools/b", mac_pool("00-1D-D8-B7-1D-00", "00-1D-D8-B7-1D-FF"))
    assert ids(await get_all(client, "/macPools")) == ["a", "b"]


async def test_delete_is_idempotent(client: httpx.AsyncClient) -> None:
    await put(client, "/macPools/p", mac_pool("001DD8B71C00", "001DD8B71FFF"))
    await delete(client, "/macPools/p")
    await assert_absent(client, "/macPools/p")
    await delete(client, "/macPools/p", status=204)
    # The range is free again.
    await put(client, "/macPools/q", mac_pool("001DD8B71C00", "001DD8B71FFF"), status=201)


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "target"),
    [
        pytest.param("00-1D-D8-B7-1F-FF", "00-1D-D8-B7-1C-00", "startMacAddress", id="reversed"),
        pytest.param("01-00-5E-00-00-00", "01-00-5E-00-00-FF", "startMacAddress", id="multicast"),
        pytest.param("FF-FF-FF-FF-FF-FF", "FF-FF-FF-FF-FF-FF", "startMacAddress", id="broadcast"),
        pytest.param("00-FF-FF-FF-FF-00", "01-00-00-00-00-10", "endMacAddress", id="end-multicast"),
        pytest.param(
            "00-FF-FF-FF-FF-00", "02-00-00-00-00-10", "endMacAddress", id="spans-multicast"
        ),
    ],
)
async def test_pool_must_be_an_ascending_unicast_range(
    client: httpx.AsyncClient, start: str, end: str, target: str
) -> None:
    await assert_put_rejected(
        client, "/macPools/bad", mac_pool(start, end), target=f"properties/{target}"
    )
    await assert_absent(client, "/macPools/bad")


@pytest.mark.parametrize(
    ("start", "end", "target"),
    [
        pytest.param("00-1D-D8-B7-1C", "00-1D-D8-B7-1F-FF", "startMacAddress", id="too-short"),
        pytest.param("00-1D-D8-B7-1C-0G", "00-1D-D8-B7-1F-FF", "startMacAddress", id="not-hex"),
        pytest.param("001D.D8B7.1C00", "00-1D-D8-B7-1F-FF", "startMacAddress", id="dotted"),
        pytest.param("00-1D-D8-B7-1C-00", "", "endMacAddress", id="empty"),
        pytest.param("00-1D-D8-B7-1C-00", 12345, "endMacAddress", id="number"),
        pytest.param("00-1D-D8-B7-1C-00", None, "endMacAddress", id="null"),
    ],
)
async def test_mac_addresses_must_be_valid(
    client: httpx.AsyncClient, start: str, end: object, target: str
) -> None:
    await assert_put_rejected(
        client, "/macPools/bad", mac_pool(start, end), target=f"properties.{target}"
    )
    await assert_absent(client, "/macPools/bad")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1F-FF"),
        ("00-1D-D8-B7-1B-00", "00-1D-D8-B7-1C-00"),
        ("00-1D-D8-B7-1F-FF", "00-1D-D8-B7-20-FF"),
        ("00-1D-D8-B7-1D-00", "00-1D-D8-B7-1D-0F"),
        ("00-1D-D8-00-00-00", "00-1D-D8-FF-FF-FF"),
    ],
    ids=["identical", "touches-start", "touches-end", "inside", "around"],
)
async def test_pools_must_not_overlap(client: httpx.AsyncClient, start: str, end: str) -> None:
    await put(client, "/macPools/existing", mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1F-FF"))
    error = await assert_put_rejected(
        client,
        "/macPools/new",
        mac_pool(start, end),
        target="macPools/new/properties/startMacAddress",
        watch=("/macPools/existing",),
    )
    assert "existing" in error["message"]
    await assert_absent(client, "/macPools/new")


async def test_growing_a_pool_into_another_is_rejected(client: httpx.AsyncClient) -> None:
    await put(client, "/macPools/a", mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1C-FF"))
    await put(client, "/macPools/b", mac_pool("00-1D-D8-B7-1E-00", "00-1D-D8-B7-1E-FF"))
    await assert_put_rejected(
        client,
        "/macPools/a",
        mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1E-00"),
        target="macPools/a/properties/startMacAddress",
        watch=("/macPools/b",),
    )


async def test_missing_properties_are_rejected(client: httpx.AsyncClient) -> None:
    await assert_put_rejected(
        client, "/macPools/bad", {"resourceId": "bad"}, target="properties.startMacAddress"
    )
