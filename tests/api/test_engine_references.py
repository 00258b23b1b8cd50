"""References between resources: resolution, kinds, in-use protection, reverse references."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

V1 = "/networking/v1"
ACL = f"{V1}/accessControlLists/A"
NETWORK = f"{V1}/logicalNetworks/L"
SUBNET = f"{NETWORK}/subnets/S"
CREDENTIAL = f"{V1}/credentials/C"
SERVER = f"{V1}/servers/H"


def subnet_body(**properties: Any) -> dict[str, Any]:
    return {"properties": {"addressPrefix": "10.0.0.0/24", **properties}}


def acl_ref(ref: str = "/accessControlLists/A") -> dict[str, Any]:
    return {"accessControlList": {"resourceRef": ref}}


def server_body(credential: str = "/credentials/C", *subnets: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "properties": {
            "connections": [
                {
                    "managementAddresses": ["host1.contoso.com"],
                    "credential": {"resourceRef": credential},
                    "credentialType": "X509Certificate",
                }
            ]
        }
    }
    if subnets:
        nic = {"resourceId": "nic1", "properties": {"logicalSubnets": []}}
        nic["properties"]["logicalSubnets"] = [{"resourceRef": s} for s in subnets]
        body["properties"]["networkInterfaces"] = [nic]
    return body


async def put(client: httpx.AsyncClient, url: str, body: object) -> dict[str, Any]:
    response = await client.put(url, json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


async def get(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


async def acl_and_network(client: httpx.AsyncClient) -> None:
    await put(client, ACL, {"properties": {}})
    await put(client, NETWORK, {"properties": {}})


async def subnet_using_acl(client: httpx.AsyncClient) -> None:
    await acl_and_network(client)
    await put(client, SUBNET, subnet_body(**acl_ref()))


async def credential_and_server(client: httpx.AsyncClient) -> None:
    await put(client, CREDENTIAL, {"properties": {"type": "X509Certificate", "value": "AB12"}})
    await put(client, SERVER, server_body())


# -- resolution -----------------------------------------------------------------------------


async def test_reference_to_a_missing_resource_is_400_naming_the_member(
    client: httpx.AsyncClient,
) -> None:
    await put(client, NETWORK, {"properties": {}})
    before = await get(client, NETWORK)
    response = await client.put(SUBNET, json=subnet_body(**acl_ref("/accessControlLists/nope")))
    error = assert_error(response, 400, "InvalidReference")
    assert error["target"] == "/logicalNetworks/L/subnets/S/properties/accessControlList"
    assert "/accessControlLists/nope" in error["message"]
    assert await get(client, NETWORK) == before


async def test_dangling_reference_in_an_embedded_child_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    subnet = {"resourceId": "S", **subnet_body(**acl_ref("/accessControlLists/nope"))}
    response = await client.put(NETWORK, json={"properties": {"subnets": [subnet]}})
    error = assert_error(response, 400, "InvalidReference")
    assert error["target"] == "/logicalNetworks/L/subnets/S/properties/accessControlList"
    assert (await client.get(NETWORK)).status_code == 404


async def test_reference_inside_a_list_member_names_the_member_path(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(SERVER, json=server_body("/credentials/nope"))
    error = assert_error(response, 400, "InvalidReference")
    assert error["target"] == "/servers/H/properties/connections/credential"
    assert (await client.get(SERVER)).status_code == 404


async def test_reference_to_the_wrong_kind_is_400(client: httpx.AsyncClient) -> None:
    await put(client, CREDENTIAL, {"properties": {"type": "X509Certificate", "value": "AB12"}})
    await put(client, NETWORK, {"properties": {}})
    response = await client.put(SUBNET, json=subnet_body(**acl_ref("/credentials/C")))
    error = assert_error(response, 400, "InvalidReference")
    assert error["target"] == "/logicalNetworks/L/subnets/S/properties/accessControlList"
    assert (await client.get(SUBNET)).status_code == 404


async def test_reference_to_a_child_of_the_wrong_kind_is_400(client: httpx.AsyncClient) -> None:
    rule = {
        "protocol": "TCP",
        "sourcePortRange": "*",
        "destinationPortRange": "*",
        "sourceAddressPrefix": "*",
        "destinationAddressPrefix": "*",
        "action": "Allow",
        "priority": 100,
        "type": "Inbound",
    }
    await put(client, ACL, {"properties": {"aclRules": [{"resourceId": "r1", "properties": rule}]}})
    await put(client, NETWORK, {"properties": {}})
    response = await client.put(
        SUBNET, json=subnet_body(**acl_ref("/accessControlLists/A/aclRules/r1"))
    )
    assert_error(response, 400, "InvalidReference")
    assert (await client.get(SUBNET)).status_code == 404


@pytest.mark.parametrize(
    "ref", ["/noSuchKind/x", "/accessControlLists", "accessControlLists", "/", "http://x/y"]
)
async def test_reference_that_is_not_a_resource_path_is_400(
    client: httpx.AsyncClient, ref: str
) -> None:
    await acl_and_network(client)
    response = await client.put(SUBNET, json=subnet_body(**acl_ref(ref)))
    error = assert_error(response, 400, "InvalidReference")
    assert error["target"] == "/logicalNetworks/L/subnets/S/properties/accessControlList"
    assert (await client.get(SUBNET)).status_code == 404


async def test_empty_reference_is_400(client: httpx.AsyncClient) -> None:
    await acl_and_network(client)
    response = await client.put(SUBNET, json=subnet_body(**acl_ref("")))
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "properties.accessControlList.resourceRef"
    assert (await client.get(SUBNET)).status_code == 404


async def test_reference_without_resource_ref_is_400(client: httpx.AsyncClient) -> None:
    await acl_and_network(client)
    body = subnet_body(accessControlList={"resourceId": "A"})
    response = await client.put(SUBNET, json=body)
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "properties.accessControlList.resourceRef"


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
    second = {"properties": {"addressPrefix": "10.0.1.0/24", **acl_ref()}}
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
    await put(client, NETWORK, {"properties": {"subnets": [{"resourceId": "S", **subnet_body()}]}})
    await put(client, CREDENTIAL, {"properties": {"type": "X509Certificate", "value": "AB12"}})
    await put(client, SERVER, server_body("/credentials/C", "/logicalNetworks/L/subnets/S"))
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
    assert (await client.delete(ACL)).status_code == 200
    assert (await client.get(ACL)).status_code == 404


async def test_delete_succeeds_once_the_referrer_is_deleted(client: httpx.AsyncClient) -> None:
    await subnet_using_acl(client)
    assert (await client.delete(NETWORK)).status_code == 200
    assert (await client.delete(ACL)).status_code == 200


async def test_re_put_dropping_a_child_used_elsewhere_is_409_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    subnets = [
        {"resourceId": "S", **subnet_body()},
        {"resourceId": "T", "properties": {"addressPrefix": "10.0.1.0/24"}},
    ]
    await put(client, NETWORK, {"properties": {"subnets": subnets}})
    await put(client, CREDENTIAL, {"properties": {"type": "X509Certificate", "value": "AB12"}})
    await put(client, SERVER, server_body("/credentials/C", "/logicalNetworks/L/subnets/S"))
    before = await get(client, NETWORK)
    response = await client.put(NETWORK, json={"properties": {"subnets": [subnets[1]]}})
    error = assert_error(response, 409, "ResourceInUse")
    assert error["target"] == "/logicalNetworks/L/subnets/S"
    assert await get(client, NETWORK) == before


async def test_re_put_with_an_empty_child_list_of_a_used_child_is_409(
    client: httpx.AsyncClient,
) -> None:
    await put(client, NETWORK, {"properties": {"subnets": [{"resourceId": "S", **subnet_body()}]}})
    await put(client, CREDENTIAL, {"properties": {"type": "X509Certificate", "value": "AB12"}})
    await put(client, SERVER, server_body("/credentials/C", "/logicalNetworks/L/subnets/S"))
    before = await get(client, NETWORK)
    response = await client.put(NETWORK, json={"properties": {"subnets": []}})
    assert_error(response, 409, "ResourceInUse")
    assert await get(client, NETWORK) == before


async def test_re_put_keeping_a_used_child_is_fine(client: httpx.AsyncClient) -> None:
    await put(client, NETWORK, {"properties": {"subnets": [{"resourceId": "S", **subnet_body()}]}})
    await put(client, CREDENTIAL, {"properties": {"type": "X509Certificate", "value": "AB12"}})
    await put(client, SERVER, server_body("/credentials/C", "/logicalNetworks/L/subnets/S"))
    same = {"resourceId": "s", "properties": {"addressPrefix": "10.0.0.0/24", "vlanID": 7}}
    response = await client.put(NETWORK, json={"properties": {"subnets": [same]}})
    assert response.status_code == 200, response.text
    nic = await get(client, f"{SERVER}/networkInterfaces/nic1")
    assert nic["properties"]["logicalSubnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]


async def test_a_referrer_may_drop_its_own_reference_and_delete_itself(
    client: httpx.AsyncClient,
) -> None:
    await credential_and_server(client)
    assert (await client.delete(SERVER)).status_code == 200
    assert (await client.delete(CREDENTIAL)).status_code == 200


# -- reverse references ---------------------------------------------------------------------


async def test_acl_lists_the_subnets_that_reference_it(client: httpx.AsyncClient) -> None:
    await subnet_using_acl(client)
    acl = await get(client, ACL)
    assert acl["properties"]["subnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]
    assert acl["properties"]["ipConfigurations"] == []
    listed = await get(client, f"{V1}/accessControlLists")
    assert listed["value"][0]["properties"]["subnets"] == acl["properties"]["subnets"]


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
    assert (await client.delete(SUBNET)).status_code == 200
    assert (await get(client, ACL))["properties"]["subnets"] == []


async def test_reverse_reference_moves_with_the_reference(client: httpx.AsyncClient) -> None:
    await subnet_using_acl(client)
    await put(client, f"{V1}/accessControlLists/B", {"properties": {}})
    await put(client, SUBNET, subnet_body(**acl_ref("/accessControlLists/B")))
    assert (await get(client, ACL))["properties"]["subnets"] == []
    b = await get(client, f"{V1}/accessControlLists/B")
    assert b["properties"]["subnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]


async def test_reverse_reference_lists_every_referrer(client: httpx.AsyncClient) -> None:
    await subnet_using_acl(client)
    other = {"properties": {"addressPrefix": "10.0.1.0/24", **acl_ref("/accesscontrollists/a")}}
    await put(client, f"{NETWORK}/subnets/T", other)
    refs = (await get(client, ACL))["properties"]["subnets"]
    assert sorted(r["resourceRef"] for r in refs) == [
        "/logicalNetworks/L/subnets/S",
        "/logicalNetworks/L/subnets/T",
    ]


async def test_reverse_references_of_embedded_children_in_lists(
    client: httpx.AsyncClient,
) -> None:
    await put(client, NETWORK, {"properties": {"subnets": [{"resourceId": "S", **subnet_body()}]}})
    await put(client, CREDENTIAL, {"properties": {"type": "X509Certificate", "value": "AB12"}})
    await put(client, SERVER, server_body("/credentials/C", "/logicalNetworks/L/subnets/S"))
    expected = [{"resourceRef": "/servers/H/networkInterfaces/nic1"}]
    one = await get(client, SUBNET)
    assert one["properties"]["networkInterfaces"] == expected
    parent = await get(client, NETWORK)
    assert parent["properties"]["subnets"][0]["properties"]["networkInterfaces"] == expected
    listed = await get(client, f"{V1}/logicalNetworks")
    assert listed["value"][0]["properties"]["subnets"][0]["properties"]["networkInterfaces"] == (
        expected
    )


async def test_reverse_reference_disappears_when_a_parent_re_put_drops_the_referrer(
    client: httpx.AsyncClient,
) -> None:
    await subnet_using_acl(client)
    await put(client, NETWORK, {"properties": {"subnets": []}})
    assert (await get(client, ACL))["properties"]["subnets"] == []
    assert (await client.delete(ACL)).status_code == 200


async def test_reference_through_the_logical_subnets_alias(client: httpx.AsyncClient) -> None:
    await put(client, NETWORK, {"properties": {"subnets": [{"resourceId": "S", **subnet_body()}]}})
    await put(client, CREDENTIAL, {"properties": {"type": "X509Certificate", "value": "AB12"}})
    written = await put(
        client, SERVER, server_body("/credentials/C", "/logicalnetworks/l/logicalSubnets/s")
    )
    nic = written["properties"]["networkInterfaces"][0]
    assert nic["properties"]["logicalSubnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]


async def test_writing_a_reference_does_not_change_the_target_etag(
    client: httpx.AsyncClient,
) -> None:
    await acl_and_network(client)
    before = await get(client, ACL)
    await put(client, SUBNET, subnet_body(**acl_ref()))
    after = await get(client, ACL)
    assert after["etag"] == before["etag"]
    assert after["properties"]["subnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]


async def test_reference_follows_stored_casing_of_the_target(client: httpx.AsyncClient) -> None:
    await put(client, f"{V1}/accessControlLists/WebAcl", {"properties": {}})
    await put(client, NETWORK, {"properties": {}})
    written = await put(client, SUBNET, subnet_body(**acl_ref("/ACCESSCONTROLLISTS/webacl")))
    assert written["properties"]["accessControlList"] == {
        "resourceRef": "/accessControlLists/WebAcl"
    }
