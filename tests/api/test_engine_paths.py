"""URL scheme of the NBI: discovery, versions, case-insensitive segments, aliases, methods."""

from __future__ import annotations

import httpx
import pytest

from controller.resources import REGISTRY
from tests.support.bodies import acl, acl_rule, ip_pool, logical_network, logical_subnet
from tests.support.nbi import (
    V1,
    assert_absent,
    assert_error,
    assert_stored,
    get,
    get_all,
    ids,
    put,
    refs,
)

VERSIONS = ("v1", "v2", "v3", "v4", "v5")
COLLECTIONS = tuple(k.name for k in REGISTRY.top_level if k.singleton_id is None)
# (name, id): ``virtualNetworkManager/configuration``, ``loadBalancerManager/config``, ...
SINGLETONS = tuple(
    (k.name, k.singleton_id) for k in REGISTRY.top_level if k.singleton_id is not None
)

LOGICAL_NETWORK = logical_network(
    logical_subnet("S1", "10.0.0.0/24", ip_pool("P1", "10.0.0.10", "10.0.0.20"))
)


async def test_discovery_is_unversioned(client: httpx.AsyncClient) -> None:
    response = await client.get("/networking/discovery")
    assert response.status_code == 200
    properties = response.json()["properties"]
    assert properties["currentRestVersion"] == "v5"
    assert properties["supportedRestVersions"] == list(VERSIONS)


async def test_discovery_path_is_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.get("/Networking/Discovery/")
    assert response.status_code == 200
    assert response.json()["properties"]["currentRestVersion"] == "v5"


@pytest.mark.parametrize("version", VERSIONS)
async def test_every_collection_is_served_under_every_version(
    client: httpx.AsyncClient, version: str
) -> None:
    for name in COLLECTIONS:
        response = await client.get(f"/networking/{version}/{name}")
        assert response.status_code == 200, name
        assert response.json() == {"value": [], "nextLink": ""}


@pytest.mark.parametrize("version", VERSIONS)
async def test_every_singleton_is_served_under_every_version(
    client: httpx.AsyncClient, version: str
) -> None:
    for name, singleton_id in SINGLETONS:
        response = await client.get(f"/networking/{version}/{name}/{singleton_id}")
        assert response.status_code == 200, name
        assert response.json()["resourceRef"] == f"/{name}/{singleton_id}"


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_resource_written_under_v1_is_the_same_under_every_version(
    client: httpx.AsyncClient, version: str
) -> None:
    await put(client, f"{V1}/accessControlLists/A", acl(acl_rule("r1")))
    one = await get(client, f"{V1}/accessControlLists/A")
    assert await get(client, f"/networking/{version}/accessControlLists/A") == one
    rule = await get(client, f"/networking/{version}/accessControlLists/A/aclRules/r1")
    assert rule["resourceRef"] == "/accessControlLists/A/aclRules/r1"


async def test_writes_are_accepted_under_v5(client: httpx.AsyncClient) -> None:
    body = acl(acl_rule("r1"), inboundDefaultAction="Deny")
    response = await client.put("/networking/v5/accessControlLists/A", json=body)
    assert response.status_code == 201
    stored = await assert_stored(client, response.json())  # read under v1
    assert stored["properties"]["inboundDefaultAction"] == "Deny"
    assert ids(stored["properties"]["aclRules"]) == ["r1"]


async def test_unserved_version_is_404_envelope(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/networking/v6/accessControlLists"), 404, "NotFound")


async def test_put_under_unserved_version_is_404_and_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put("/networking/v6/accessControlLists/A", json={"properties": {}})
    assert_error(response, 404, "NotFound")
    await assert_absent(client, f"{V1}/accessControlLists/A")


async def test_path_prefix_and_collection_are_case_insensitive(
    client: httpx.AsyncClient,
) -> None:
    await put(client, f"{V1}/accessControlLists/A", {"properties": {}})
    assert ids(await get_all(client, "/Networking/V1/AccessControlLists")) == ["A"]


async def test_child_segments_are_case_insensitive(client: httpx.AsyncClient) -> None:
    await put(client, f"{V1}/logicalNetworks/X", LOGICAL_NETWORK)
    pools = await get_all(client, f"{V1}/logicalnetworks/X/Subnets/S1/IPPOOLS")
    assert refs(pools) == ["/logicalNetworks/X/subnets/S1/ipPools/P1"]


async def test_resource_ids_in_the_path_are_case_insensitive(client: httpx.AsyncClient) -> None:
    await put(client, f"{V1}/logicalNetworks/X", LOGICAL_NETWORK)
    pool = await get(client, f"{V1}/LOGICALNETWORKS/x/subnets/s1/ipPools/p1")
    assert pool["resourceRef"] == "/logicalNetworks/X/subnets/S1/ipPools/P1"


async def test_put_to_a_differently_cased_path_writes_the_canonical_resource(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put("/NETWORKING/V1/ACCESSCONTROLLISTS/A", json={"properties": {}})
    assert response.status_code == 201
    assert response.json()["resourceRef"] == "/accessControlLists/A"
    await assert_stored(client, response.json())
    assert ids(await get_all(client, f"{V1}/accessControlLists")) == ["A"]


async def test_trailing_slash_on_collections(client: httpx.AsyncClient) -> None:
    await put(client, f"{V1}/logicalNetworks/X", LOGICAL_NETWORK)
    assert ids(await get_all(client, f"{V1}/logicalnetworks/")) == ["X"]
    assert ids(await get_all(client, f"{V1}/logicalNetworks/X/subnets/")) == ["S1"]


async def test_trailing_slash_on_an_item(client: httpx.AsyncClient) -> None:
    await put(client, f"{V1}/accessControlLists/A", {"properties": {}})
    assert (await get(client, f"{V1}/accessControlLists/A/"))["resourceId"] == "A"


async def test_logical_subnets_alias_reads_and_writes_subnets(client: httpx.AsyncClient) -> None:
    await put(client, f"{V1}/logicalNetworks/L", {"properties": {}})
    body = logical_subnet(None, "10.1.0.0/24")
    created = await put(client, f"{V1}/logicalNetworks/L/logicalSubnets/S", body, status=201)
    assert created["resourceRef"] == "/logicalNetworks/L/subnets/S"
    await assert_stored(client, created)
    alias = await get(client, f"{V1}/logicalNetworks/L/LogicalSubnets/S")
    assert alias == await get(client, f"{V1}/logicalNetworks/L/subnets/S")
    assert ids(await get_all(client, f"{V1}/logicalNetworks/L/logicalSubnets")) == ["S"]


@pytest.mark.parametrize(
    "path",
    [
        "/networking/v1/noSuchThings",
        "/networking/v1/noSuchThings/x",
        "/networking/v1/accessControlLists/A/noSuchChildren",
        "/networking/v1/accessControlLists/A/aclRules/r1/more",
        "/networking/v1",
        "/networking/v1/discovery",
        "/somewhere/else",
    ],
)
async def test_unknown_path_is_404_envelope(client: httpx.AsyncClient, path: str) -> None:
    assert_error(await client.get(path), 404, "NotFound")


async def test_child_kind_is_not_a_top_level_collection(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(f"{V1}/aclRules"), 404, "NotFound")


@pytest.mark.parametrize("method", ["PATCH", "POST"])
async def test_patch_and_post_on_an_item_are_405(client: httpx.AsyncClient, method: str) -> None:
    await put(client, f"{V1}/accessControlLists/A", {"properties": {}})
    before = await get(client, f"{V1}/accessControlLists/A")
    response = await client.request(
        method, f"{V1}/accessControlLists/A", json={"properties": {"inboundDefaultAction": "Deny"}}
    )
    assert_error(response, 405, "MethodNotAllowed")
    assert await get(client, f"{V1}/accessControlLists/A") == before


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_writes_to_a_collection_are_405(client: httpx.AsyncClient, method: str) -> None:
    existing = await put(client, f"{V1}/accessControlLists/A", acl(acl_rule("r1")))
    response = await client.request(method, f"{V1}/accessControlLists", json={"properties": {}})
    assert_error(response, 405, "MethodNotAllowed")
    assert await get_all(client, f"{V1}/accessControlLists") == [existing]


async def test_delete_of_a_singleton_is_405(client: httpx.AsyncClient) -> None:
    before = await get(client, f"{V1}/virtualNetworkManager/configuration")
    response = await client.delete(f"{V1}/virtualNetworkManager/configuration")
    assert_error(response, 405, "MethodNotAllowed")
    assert await get(client, f"{V1}/virtualNetworkManager/configuration") == before


async def test_singleton_with_another_id_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{V1}/virtualNetworkManager/other")
    assert_error(response, 404, "NotFound")


async def test_singleton_id_is_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.get("/networking/v1/VirtualNetworkManager/Configuration")
    assert response.status_code == 200
    assert response.json()["resourceRef"] == "/virtualNetworkManager/configuration"
