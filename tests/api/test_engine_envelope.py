"""The MS-NCNBI resource envelope: ids, refs, instanceIds, etags, lists, 404s."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

V1 = "/networking/v1"
ACL = f"{V1}/accessControlLists/A"
ETAG = re.compile(r'^W/"([0-9a-f-]{36})"$')


def rule(resource_id: str, priority: int = 100) -> dict[str, Any]:
    return {
        "resourceId": resource_id,
        "properties": {
            "protocol": "TCP",
            "sourcePortRange": "*",
            "destinationPortRange": "80",
            "sourceAddressPrefix": "*",
            "destinationAddressPrefix": "*",
            "action": "Allow",
            "priority": priority,
            "type": "Inbound",
        },
    }


def acl(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"properties": {"aclRules": list(rules)}}


async def put(client: httpx.AsyncClient, url: str, body: object) -> httpx.Response:
    response = await client.put(url, json=body)
    assert response.status_code in (200, 201), response.text
    return response


async def get(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_etag(value: str) -> None:
    match = ETAG.match(value)
    assert match is not None, value
    uuid.UUID(match.group(1))


async def test_put_returns_the_full_envelope(client: httpx.AsyncClient) -> None:
    body = {
        "tags": {"owner": "ops", "n": 1},
        "resourceMetadata": {"client": "SCVMM", "resourceName": "web"},
        "properties": {"inboundDefaultAction": "Deny"},
    }
    response = await client.put(ACL, json=body)
    assert response.status_code == 201
    created = response.json()
    assert created["resourceId"] == "A"
    assert created["resourceRef"] == "/accessControlLists/A"
    assert uuid.UUID(created["instanceId"])
    assert_etag(created["etag"])
    assert created["tags"] == {"owner": "ops", "n": 1}
    assert created["resourceMetadata"] == {"client": "SCVMM", "resourceName": "web"}
    assert created["properties"] == {
        "provisioningState": "Succeeded",
        "inboundDefaultAction": "Deny",
        "outboundDefaultAction": "Permit",
        "aclRules": [],
        "ipConfigurations": [],
        "subnets": [],
    }


async def test_get_one_matches_the_put_response(client: httpx.AsyncClient) -> None:
    created = (await put(client, ACL, acl(rule("r1")))).json()
    response = await client.get(ACL)
    assert response.status_code == 200
    assert response.json() == created


async def test_etag_header_equals_body_etag_on_put_and_get(client: httpx.AsyncClient) -> None:
    written = await put(client, ACL, acl())
    assert written.headers["etag"] == written.json()["etag"]
    read = await client.get(ACL)
    assert read.headers["etag"] == read.json()["etag"] == written.json()["etag"]


async def test_etag_header_on_a_child(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(rule("r1")))
    response = await client.get(f"{ACL}/aclRules/r1")
    assert response.headers["etag"] == response.json()["etag"]


async def test_missing_members_default_to_empty_tags_and_metadata(
    client: httpx.AsyncClient,
) -> None:
    created = (await put(client, ACL, {"properties": {}})).json()
    assert created["tags"] == {}
    assert created["resourceMetadata"] == {}


async def test_resource_ref_has_no_version_prefix(client: httpx.AsyncClient) -> None:
    response = await client.put("/networking/v3/accessControlLists/A", json=acl(rule("r1")))
    body = response.json()
    assert body["resourceRef"] == "/accessControlLists/A"
    assert body["properties"]["aclRules"][0]["resourceRef"] == "/accessControlLists/A/aclRules/r1"


async def test_embedded_child_has_the_full_envelope(client: httpx.AsyncClient) -> None:
    parent = (await put(client, ACL, acl(rule("r1")))).json()
    child = parent["properties"]["aclRules"][0]
    assert child["resourceId"] == "r1"
    assert child["resourceRef"] == "/accessControlLists/A/aclRules/r1"
    assert uuid.UUID(child["instanceId"]) != uuid.UUID(parent["instanceId"])
    assert child["etag"] == parent["etag"]
    assert child["properties"]["provisioningState"] == "Succeeded"
    assert child["properties"]["priority"] == 100


async def test_instance_id_is_stable_across_re_puts(client: httpx.AsyncClient) -> None:
    first = (await put(client, ACL, acl(rule("r1")))).json()
    second = (await put(client, ACL, acl(rule("r1", 200)))).json()
    assert second["instanceId"] == first["instanceId"]
    assert (
        second["properties"]["aclRules"][0]["instanceId"]
        == first["properties"]["aclRules"][0]["instanceId"]
    )


async def test_instance_ids_are_stable_across_child_re_puts(client: httpx.AsyncClient) -> None:
    first = (await put(client, ACL, acl(rule("r1")))).json()
    child = (await put(client, f"{ACL}/aclRules/r1", rule("r1", 300))).json()
    assert child["instanceId"] == first["properties"]["aclRules"][0]["instanceId"]
    parent = await get(client, ACL)
    assert parent["instanceId"] == first["instanceId"]


async def test_every_put_of_the_resource_changes_its_etag(client: httpx.AsyncClient) -> None:
    etags = [(await put(client, ACL, acl(rule("r1")))).json()["etag"] for _ in range(3)]
    assert len(set(etags)) == 3
    for etag in etags:
        assert_etag(etag)


async def test_child_put_changes_the_parent_etag(client: httpx.AsyncClient) -> None:
    before = (await put(client, ACL, acl(rule("r1")))).json()["etag"]
    child = await put(client, f"{ACL}/aclRules/r2", rule("r2", 200))
    parent = await get(client, ACL)
    assert parent["etag"] != before
    assert child.json()["etag"] == child.headers["etag"] == parent["etag"]


async def test_child_delete_changes_the_parent_etag(client: httpx.AsyncClient) -> None:
    before = (await put(client, ACL, acl(rule("r1"), rule("r2", 200)))).json()["etag"]
    assert (await client.delete(f"{ACL}/aclRules/r2")).status_code == 200
    parent = await get(client, ACL)
    assert parent["etag"] != before
    assert [r["resourceId"] for r in parent["properties"]["aclRules"]] == ["r1"]
    assert parent["properties"]["aclRules"][0]["etag"] == parent["etag"]


async def test_children_show_the_parent_etag_after_a_change(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(rule("r1"), rule("r2", 200)))
    await put(client, f"{ACL}/aclRules/r1", rule("r1", 150))
    parent = await get(client, ACL)
    assert {r["etag"] for r in parent["properties"]["aclRules"]} == {parent["etag"]}
    untouched = await client.get(f"{ACL}/aclRules/r2")
    assert untouched.headers["etag"] == parent["etag"]


async def test_etag_of_another_resource_is_unaffected(client: httpx.AsyncClient) -> None:
    other = (await put(client, f"{V1}/accessControlLists/B", acl())).json()["etag"]
    await put(client, ACL, acl(rule("r1")))
    await put(client, f"{ACL}/aclRules/r2", rule("r2", 200))
    assert (await get(client, f"{V1}/accessControlLists/B"))["etag"] == other


async def test_grandchild_put_changes_the_root_etag(client: httpx.AsyncClient) -> None:
    network = f"{V1}/logicalNetworks/L"
    subnet = {"resourceId": "S", "properties": {"addressPrefix": "10.0.0.0/24"}}
    before = (await put(client, network, {"properties": {"subnets": [subnet]}})).json()["etag"]
    pool = {"properties": {"startIpAddress": "10.0.0.10", "endIpAddress": "10.0.0.20"}}
    written = (await put(client, f"{network}/subnets/S/ipPools/P", pool)).json()
    root = await get(client, network)
    assert root["etag"] != before
    assert written["etag"] == root["etag"]
    assert root["properties"]["subnets"][0]["etag"] == root["etag"]


async def test_get_all_is_a_value_list_with_children_embedded(client: httpx.AsyncClient) -> None:
    one = (await put(client, ACL, acl(rule("r1"), rule("r2", 200)))).json()
    two = (await put(client, f"{V1}/accessControlLists/B", acl())).json()
    response = await client.get(f"{V1}/accessControlLists")
    assert response.status_code == 200
    listed = response.json()
    assert set(listed) == {"value", "nextLink"}
    assert listed["nextLink"] == ""
    assert sorted(listed["value"], key=lambda r: r["resourceId"]) == [one, two]


async def test_get_all_of_an_empty_collection(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{V1}/macPools")
    assert response.status_code == 200
    assert response.json() == {"value": [], "nextLink": ""}


async def test_get_all_embeds_grandchildren(client: httpx.AsyncClient) -> None:
    pool = {
        "resourceId": "P",
        "properties": {"startIpAddress": "10.0.0.10", "endIpAddress": "10.0.0.20"},
    }
    subnet = {"resourceId": "S", "properties": {"addressPrefix": "10.0.0.0/24", "ipPools": [pool]}}
    await put(client, f"{V1}/logicalNetworks/L", {"properties": {"subnets": [subnet]}})
    listed = await get(client, f"{V1}/logicalNetworks")
    pools = listed["value"][0]["properties"]["subnets"][0]["properties"]["ipPools"]
    assert [p["resourceRef"] for p in pools] == ["/logicalNetworks/L/subnets/S/ipPools/P"]


async def test_get_of_a_child_collection(client: httpx.AsyncClient) -> None:
    parent = (await put(client, ACL, acl(rule("r1"), rule("r2", 200)))).json()
    response = await client.get(f"{ACL}/aclRules")
    assert response.status_code == 200
    assert response.json() == {"value": parent["properties"]["aclRules"], "nextLink": ""}


async def test_get_of_an_empty_child_collection(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl())
    response = await client.get(f"{ACL}/aclRules")
    assert response.status_code == 200
    assert response.json() == {"value": [], "nextLink": ""}


async def test_children_keep_the_order_they_were_written_in(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(rule("zeta", 300), rule("alpha", 100), rule("Mid", 200)))
    rules = (await get(client, f"{ACL}/aclRules"))["value"]
    assert [r["resourceId"] for r in rules] == ["zeta", "alpha", "Mid"]


async def test_get_of_a_missing_resource_is_404_with_error_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{V1}/accessControlLists/nope")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "NotFound"
    assert error["message"]
    assert error["target"] == "/accessControlLists/nope"


async def test_get_of_a_missing_child_is_404(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(rule("r1")))
    response = await client.get(f"{ACL}/aclRules/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


async def test_get_of_a_child_of_a_missing_parent_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{V1}/accessControlLists/nope/aclRules/r1")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


async def test_child_collection_of_a_missing_parent_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{V1}/accessControlLists/nope/aclRules")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "NotFound"
    assert error["target"] == "/accessControlLists/nope"


async def test_grandchild_collection_of_a_missing_subnet_is_404(
    client: httpx.AsyncClient,
) -> None:
    await put(client, f"{V1}/logicalNetworks/L", {"properties": {}})
    response = await client.get(f"{V1}/logicalNetworks/L/subnets/nope/ipPools")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


async def test_provisioning_state_of_every_node_is_succeeded(client: httpx.AsyncClient) -> None:
    listed = (await put(client, ACL, acl(rule("r1"), rule("r2", 200)))).json()
    states = [listed["properties"]["provisioningState"]]
    states += [r["properties"]["provisioningState"] for r in listed["properties"]["aclRules"]]
    assert states == ["Succeeded"] * 3
