"""References between resources: resolution, kinds, in-use protection, reverse references."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import (
    acl,
    acl_rule,
    connection,
    credential,
    logical_network,
    logical_subnet,
    network_interface,
    ref,
    server,
)
from tests.support.nbi import (
    V1,
    Json,
    assert_absent,
    assert_error,
    delete,
    get,
    get_all,
    put,
    refs,
)

ACL = f"{V1}/accessControlLists/A"
NETWORK = f"{V1}/logicalNetworks/L"
SUBNET = f"{NETWORK}/subnets/S"
CREDENTIAL = f"{V1}/credentials/C"
SERVER = f"{V1}/servers/H"


def subnet_body(**properties: object) -> Json:
    """Subnet S of network L."""
    return logical_subnet("S", "10.0.0.0/24", **properties)


def server_body(credential_path: str = "/credentials/C", *subnets: str) -> Json:
    """Server H with one connection using ``credential_path``; with ``subnets``, a NIC nic1
    on them."""
    if not subnets:
        return server(connection(credential_path))
    return server(
        connection(credential_path), networkInterfaces=[network_interface("nic1", *subnets)]
    )


async def acl_and_network(client: httpx.AsyncClient) -> None:
    await put(client, ACL, {"properties": {}})
    await put(client, NETWORK, {"properties": {}})


async def subnet_using_acl(client: httpx.AsyncClient) -> None:
    await acl_and_network(client)
    await put(client, SUBNET, subnet_body(accessControlList=ref("/accessControlLists/A")))


async def credential_and_server(client: httpx.AsyncClient, *subnets: str) -> Json:
    """Credential C and server H using it (with nic1 on ``subnets``, if any)."""
    await put(client, CREDENTIAL, credential("X509Certificate", value="AB12"))
    return await put(client, SERVER, server_body("/credentials/C", *subnets))


async def server_on_subnet(
    client: httpx.AsyncClient, subnet: str = "/logicalNetworks/L/subnets/S"
) -> Json:
    """Network L with subnet S, and server H whose nic1 is on it, referred to as ``subnet``."""
    await put(client, NETWORK, logical_network(subnet_body()))
    return await credential_and_server(client, subnet)


# -- resolution -----------------------------------------------------------------------------


async def test_reference_to_a_missing_resource_is_400_naming_the_member(
    client: httpx.AsyncClient,
) -> None:
    await put(client, NETWORK, {"properties": {}})
    before = await get(client, NETWORK)
    response = await client.put(
        SUBNET, json=subnet_body(accessControlList=ref("/accessControlLists/nope"))
    )
    error = assert_error(response, 400, "InvalidReference")
    assert error["target"] == "/logicalNetworks/L/subnets/S/properties/accessControlList"
    assert "/accessControlLists/nope" in error["message"]
    assert await get(client, NETWORK) == before


async def test_dangling_reference_in_an_embedded_child_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    subnet = subnet_body(accessControlList=ref("/accessControlLists/nope"))
    response = await client.put(NETWORK, json=logical_network(subnet))
    error = assert_error(response, 400, "InvalidReference")
    assert error["target"] == "/logicalNetworks/L/subnets/S/properties/accessControlList"
    await assert_absent(client, NETWORK)


async def test_reference_inside_a_list_member_names_the_member_path(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(SERVER, json=server_body("/credentials/nope"))
    error = assert_error(response, 400, "InvalidReference")
    assert error["target"] == "/servers/H/properties/connections/credential"
    await assert_absent(client, SERVER)


async def test_reference_to_the_wrong_kind_is_400(client: httpx.AsyncClient) -> None:
    await put(client, CREDENTIAL, credential("X509Certificate", value="AB12"))
    await put(client, NETWORK, {"properties": {}})
    response = await client.put(SUBNET, json=subnet_body(accessControlList=ref("/credentials/C")))
    error = assert_error(response, 400, "InvalidReference")
    assert error["target"] == "/logicalNetworks/L/subnets/S/properties/accessControlList"
    await assert_absent(client, SUBNET)


async def test_reference_to_a_child_of_the_wrong_kind_is_400(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(acl_rule("r1")))
    await put(client, NETWORK, {"properties": {}})
    response = await client.put(
        SUBNET, json=subnet_body(accessControlList=ref("/accessControlLists/A/aclRules/r1"))
    )
    assert_error(response, 400, "InvalidReference")
    await assert_absent(client, SUBNET)


@pytest.mark.parametrize(
    "reference", ["/noSuchKind/x", "/accessControlLists", "accessControlLists", "/", "http://x/y"]
)
async def test_reference_that_is_not_a_resource_path_is_400(
    client: httpx.AsyncClient, reference: str
) -> None:
    await acl_and_network(client)
    response = await client.put(SUBNET, json=subnet_body(accessControlList=ref(reference)))
    error = assert_error(response, 400, "InvalidReference")
    assert error["target"] == "/logicalNetworks/L/subnets/S/properties/accessControlList"
    await assert_absent(client, SUBNET)


async def test_empty_reference_is_400(client: httpx.AsyncClient) -> None:
    await acl_and_network(client)
    response = await client.put(SUBNET, json=subnet_body(accessControlList=ref("")))
    error = assert_error(response, 400, "InvalidInput")
    assert (
        error["target"] == "/logicalNetworks/L/subnets/S/properties/accessControlList/resourceRef"
    )
    await assert_absent(client, SUBNET)


async def test_reference_without_resource_ref_is_400(client: httpx.AsyncClient) -> None:
    await acl_and_network(client)
    body = subnet_body(accessControlList={"resourceId": "A"})
    response = await client.put(SUBNET, json=body)
    error = assert_error(response, 400, "InvalidInput")
    assert (
        error["target"] == "/logicalNetworks/L/subnets/S/properties/accessControlList/resourceRef"
    )


async def test_reference_as_a_bare_string_is_accepted(client: httpx.AsyncClient) -> None:
    await acl_and_network(client)
    written = await put(client, SUBNET, subnet_body(accessControlList="/accessControlLists/A"))
    assert written["properties"]["accessControlList"] == {"resourceRef": "/accessControlLists/A"}


# -- in use ---------------------------------------------------------------------------------


async def test_delete_of_an_acl_used_by_a_subnet_is_409_naming_the_user(
    client: httpx.AsyncClient,
) -> None:
    await subnet_using_acl(client)
    before = await get(client, ACL)
    response = await client.delete(ACL)
    error = assert_error(response, 409, "ResourceInUse")
    assert error["target"] == "/accessControlLists/A"
    assert "/logicalNetworks/L/subnets/S" in error["message"]
    assert [d["target"] for d in error["details"]] == ["/logicalNetworks/L/subnets/S"]
    assert await get(client, ACL) == before


async def test_delete_of_a_credential_used_by_a_server_is_409(client: httpx.AsyncClient) -> None:
    await credential_and_server(client)
    before = await get(client, CREDENTIAL)
    response = await client.delete(CREDENTIAL)
    error = assert_error(response, 409, "ResourceInUse")
    assert error["target"] == "/credentials/C"
    assert "/servers/H" in error["message"]
    assert error["details"][0]["target"] == "/servers/H"
    assert await get(client, CREDENTIAL) == before


async def test_in_use_error_lists_every_user(client: httpx.AsyncClient) -> None:
    await subnet_using_acl(client)
    second = logical_subnet("T", "10.0.1.0/24", accessControlList=ref("/accessControlLists/A"))
    await put(client, f"{NETWORK}/subnets/T", second)
    error = assert_error(await client.delete(ACL), 409, "ResourceInUse")
    assert sorted(d["target"] for d in error["details"]) == [
        "/logicalNetworks/L/subnets/S",
        "/logicalNetworks/L/subnets/T",
    ]


async def test_delete_with_if_match_of_a_used_resource_is_still_409(
    client: httpx.AsyncClient,
) -> None:
    await subnet_using_acl(client)
    etag = (await get(client, ACL))["etag"]
    response = await client.delete(ACL, headers={"If-Match": etag})
    assert_error(response, 409, "ResourceInUse")


async def test_delete_of_a_parent_whose_child_is_used_is_409(client: httpx.AsyncClient) -> None:
    await server_on_subnet(client)
    before = await get(client, NETWORK)
    error = assert_error(await client.delete(NETWORK), 409, "ResourceInUse")
    assert error["target"] == "/logicalNetworks/L/subnets/S"
    assert error["details"][0]["target"] == "/servers/H/networkInterfaces/nic1"
    assert await get(client, NETWORK) == before
    error = assert_error(await client.delete(SUBNET), 409, "ResourceInUse")
    assert await get(client, NETWORK) == before


async def test_delete_succeeds_once_the_reference_is_removed(client: httpx.AsyncClient) -> None:
    await subnet_using_acl(client)
    await put(client, SUBNET, subnet_body())
    await delete(client, ACL)
    await assert_absent(client, ACL)


async def test_delete_succeeds_once_the_referrer_is_deleted(client: httpx.AsyncClient) -> None:
    await subnet_using_acl(client)
    await delete(client, NETWORK)
    await delete(client, ACL)


async def test_re_put_dropping_a_child_used_elsewhere_is_409_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    subnets = [subnet_body(), logical_subnet("T", "10.0.1.0/24")]
    await put(client, NETWORK, logical_network(*subnets))
    await credential_and_server(client, "/logicalNetworks/L/subnets/S")
    before = await get(client, NETWORK)
    response = await client.put(NETWORK, json=logical_network(subnets[1]))
    error = assert_error(response, 409, "ResourceInUse")
    assert error["target"] == "/logicalNetworks/L/subnets/S"
    assert await get(client, NETWORK) == before


async def test_re_put_with_an_empty_child_list_of_a_used_child_is_409(
    client: httpx.AsyncClient,
) -> None:
    await server_on_subnet(client)
    before = await get(client, NETWORK)
    response = await client.put(NETWORK, json={"properties": {"subnets": []}})
    assert_error(response, 409, "ResourceInUse")
    assert await get(client, NETWORK) == before


async def test_re_put_keeping_a_used_child_is_fine(client: httpx.AsyncClient) -> None:
    await server_on_subnet(client)
    same = {"resourceId": "s", "properties": {"addressPrefix": "10.0.0.0/24", "vlanID": 7}}
    response = await client.put(NETWORK, json={"properties": {"subnets": [same]}})
    assert response.status_code == 200, response.text
    nic = await get(client, f"{SERVER}/networkInterfaces/nic1")
    assert nic["properties"]["logicalSubnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]


async def test_a_referrer_may_drop_its_own_reference_and_delete_itself(
    client: httpx.AsyncClient,
) -> None:
    await credential_and_server(client)
    await delete(client, SERVER)
    await delete(client, CREDENTIAL)


# -- reverse references ---------------------------------------------------------------------


async def test_acl_lists_the_subnets_that_reference_it(client: httpx.AsyncClient) -> None:
    await subnet_using_acl(client)
    used = await get(client, ACL)
    assert used["properties"]["subnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]
    assert used["properties"]["ipConfigurations"] == []
    listed = await get_all(client, f"{V1}/accessControlLists")
    assert listed[0]["properties"]["subnets"] == used["properties"]["subnets"]


async def test_reverse_reference_disappears_when_the_reference_is_removed(
    client: httpx.AsyncClient,
) -> None:
    await subnet_using_acl(client)
    await put(client, SUBNET, subnet_body())
    assert (await get(client, ACL))["properties"]["subnets"] == []


async def test_reverse_reference_disappears_when_the_referrer_is_deleted(
    client: httpx.AsyncClient,
) -> None:
    await subnet_using_acl(client)
    await delete(client, SUBNET)
    assert (await get(client, ACL))["properties"]["subnets"] == []


async def test_reverse_reference_moves_with_the_reference(client: httpx.AsyncClient) -> None:
    await subnet_using_acl(client)
    await put(client, f"{V1}/accessControlLists/B", {"properties": {}})
    await put(client, SUBNET, subnet_body(accessControlList=ref("/accessControlLists/B")))
    assert (await get(client, ACL))["properties"]["subnets"] == []
    b = await get(client, f"{V1}/accessControlLists/B")
    assert b["properties"]["subnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]


async def test_reverse_reference_lists_every_referrer(client: httpx.AsyncClient) -> None:
    await subnet_using_acl(client)
    other = logical_subnet("T", "10.0.1.0/24", accessControlList=ref("/accesscontrollists/a"))
    await put(client, f"{NETWORK}/subnets/T", other)
    assert sorted(refs((await get(client, ACL))["properties"]["subnets"])) == [
        "/logicalNetworks/L/subnets/S",
        "/logicalNetworks/L/subnets/T",
    ]


async def test_reverse_references_of_embedded_children_in_lists(
    client: httpx.AsyncClient,
) -> None:
    await server_on_subnet(client)
    expected = [{"resourceRef": "/servers/H/networkInterfaces/nic1"}]
    one = await get(client, SUBNET)
    assert one["properties"]["networkInterfaces"] == expected
    parent = await get(client, NETWORK)
    assert parent["properties"]["subnets"][0]["properties"]["networkInterfaces"] == expected
    listed = await get_all(client, f"{V1}/logicalNetworks")
    assert listed[0]["properties"]["subnets"][0]["properties"]["networkInterfaces"] == expected


async def test_reverse_reference_disappears_when_a_parent_re_put_drops_the_referrer(
    client: httpx.AsyncClient,
) -> None:
    await subnet_using_acl(client)
    await put(client, NETWORK, {"properties": {"subnets": []}})
    assert (await get(client, ACL))["properties"]["subnets"] == []
    await delete(client, ACL)


async def test_reference_through_the_logical_subnets_alias(client: httpx.AsyncClient) -> None:
    written = await server_on_subnet(client, "/logicalnetworks/l/logicalSubnets/s")
    nic = written["properties"]["networkInterfaces"][0]
    assert nic["properties"]["logicalSubnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]


async def test_writing_a_reference_does_not_change_the_target_etag(
    client: httpx.AsyncClient,
) -> None:
    await acl_and_network(client)
    before = await get(client, ACL)
    await put(client, SUBNET, subnet_body(accessControlList=ref("/accessControlLists/A")))
    after = await get(client, ACL)
    assert after["etag"] == before["etag"]
    assert after["properties"]["subnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]


async def test_reference_follows_stored_casing_of_the_target(client: httpx.AsyncClient) -> None:
    await put(client, f"{V1}/accessControlLists/WebAcl", {"properties": {}})
    await put(client, NETWORK, {"properties": {}})
    written = await put(
        client, SUBNET, subnet_body(accessControlList=ref("/ACCESSCONTROLLISTS/webacl"))
    )
    assert written["properties"]["accessControlList"] == {
        "resourceRef": "/accessControlLists/WebAcl"
    }
