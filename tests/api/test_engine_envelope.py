"""The MS-NCNBI resource envelope: ids, refs, instanceIds, etags, lists, 404s."""

from __future__ import annotations

import uuid

import httpx

from tests.support.bodies import acl, acl_rule, ip_pool, logical_network, logical_subnet
from tests.support.nbi import (
    V1,
    assert_absent,
    assert_error,
    assert_etag,
    get,
    get_all,
    ids,
    put,
    put_raw,
    refs,
)

ACL = f"{V1}/accessControlLists/A"


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
    created = await put(client, ACL, acl(acl_rule("r1")))
    response = await client.get(ACL)
    assert response.status_code == 200
    assert response.json() == created


async def test_etag_header_equals_body_etag_on_put_and_get(client: httpx.AsyncClient) -> None:
    written = await put_raw(client, ACL, acl())
    assert written.status_code == 201, written.text
    assert written.headers["etag"] == written.json()["etag"]
    read = await client.get(ACL)
    assert read.headers["etag"] == read.json()["etag"] == written.json()["etag"]


async def test_etag_header_on_a_child(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(acl_rule("r1")))
    response = await client.get(f"{ACL}/aclRules/r1")
    assert response.headers["etag"] == response.json()["etag"]


async def test_missing_members_default_to_empty_tags_and_metadata(
    client: httpx.AsyncClient,
) -> None:
    created = await put(client, ACL, {"properties": {}})
    assert created["tags"] == {}
    assert created["resourceMetadata"] == {}


async def test_resource_ref_has_no_version_prefix(client: httpx.AsyncClient) -> None:
    body = await put(client, "/networking/v3/accessControlLists/A", acl(acl_rule("r1")))
    assert body["resourceRef"] == "/accessControlLists/A"
    assert body["properties"]["aclRules"][0]["resourceRef"] == "/accessControlLists/A/aclRules/r1"


async def test_embedded_child_has_the_full_envelope(client: httpx.AsyncClient) -> None:
    parent = await put(client, ACL, acl(acl_rule("r1", priority=100)))
    child = parent["properties"]["aclRules"][0]
    assert child["resourceId"] == "r1"
    assert child["resourceRef"] == "/accessControlLists/A/aclRules/r1"
    assert uuid.UUID(child["instanceId"]) != uuid.UUID(parent["instanceId"])
    assert child["etag"] == parent["etag"]
    assert child["properties"]["provisioningState"] == "Succeeded"
    assert child["properties"]["priority"] == 100


async def test_instance_id_is_stable_across_re_puts(client: httpx.AsyncClient) -> None:
    first = await put(client, ACL, acl(acl_rule("r1")))
    second = await put(client, ACL, acl(acl_rule("r1", 200)))
    assert second["instanceId"] == first["instanceId"]
    assert (
        second["properties"]["aclRules"][0]["instanceId"]
        == first["properties"]["aclRules"][0]["instanceId"]
    )


async def test_instance_ids_are_stable_across_child_re_puts(client: httpx.AsyncClient) -> None:
    first = await put(client, ACL, acl(acl_rule("r1")))
    child = await put(client, f"{ACL}/aclRules/r1", acl_rule("r1", 300))
    assert child["instanceId"] == first["properties"]["aclRules"][0]["instanceId"]
    parent = await get(client, ACL)
    assert parent["instanceId"] == first["instanceId"]


async def test_every_put_of_the_resource_changes_its_etag(client: httpx.AsyncClient) -> None:
    etags = [(await put(client, ACL, acl(acl_rule("r1"))))["etag"] for _ in range(3)]
    assert len(set(etags)) == 3
    for etag in etags:
        assert_etag(etag)


async def test_child_put_changes_the_parent_etag(client: httpx.AsyncClient) -> None:
    before = (await put(client, ACL, acl(acl_rule("r1"))))["etag"]
    child = await put_raw(client, f"{ACL}/aclRules/r2", acl_rule("r2", 200))
    assert child.status_code == 201, child.text
    parent = await get(client, ACL)
    assert parent["etag"] != before
    assert child.json()["etag"] == child.headers["etag"] == parent["etag"]


async def test_child_delete_changes_the_parent_etag(client: httpx.AsyncClient) -> None:
    before = (await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200))))["etag"]
    assert (await client.delete(f"{ACL}/aclRules/r2")).status_code == 200
    parent = await get(client, ACL)
    assert parent["etag"] != before
    assert ids(parent["properties"]["aclRules"]) == ["r1"]
    assert parent["properties"]["aclRules"][0]["etag"] == parent["etag"]


async def test_children_show_the_parent_etag_after_a_change(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200)))
    await put(client, f"{ACL}/aclRules/r1", acl_rule("r1", 150))
    parent = await get(client, ACL)
    assert {r["etag"] for r in parent["properties"]["aclRules"]} == {parent["etag"]}
    untouched = await client.get(f"{ACL}/aclRules/r2")
    assert untouched.headers["etag"] == parent["etag"]


async def test_etag_of_another_resource_is_unaffected(client: httpx.AsyncClient) -> None:
    other = (await put(client, f"{V1}/accessControlLists/B", acl()))["etag"]
    await put(client, ACL, acl(acl_rule("r1")))
    await put(client, f"{ACL}/aclRules/r2", acl_rule("r2", 200))
    assert (await get(client, f"{V1}/accessControlLists/B"))["etag"] == other


async def test_grandchild_put_changes_the_root_etag(client: httpx.AsyncClient) -> None:
    network = f"{V1}/logicalNetworks/L"
    subnet = logical_subnet("S", "10.0.0.0/24")
    before = (await put(client, network, logical_network(subnet)))["etag"]
    pool = ip_pool(None, "10.0.0.10", "10.0.0.20")
    written = await put(client, f"{network}/subnets/S/ipPools/P", pool)
    root = await get(client, network)
    assert root["etag"] != before
    assert written["etag"] == root["etag"]
    assert root["properties"]["subnets"][0]["etag"] == root["etag"]


async def test_get_all_is_a_value_list_with_children_embedded(client: httpx.AsyncClient) -> None:
    one = await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200)))
    two = await put(client, f"{V1}/accessControlLists/B", acl())
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
    pool = ip_pool("P", "10.0.0.10", "10.0.0.20")
    subnet = logical_subnet("S", "10.0.0.0/24", pool)
    await put(client, f"{V1}/logicalNetworks/L", logical_network(subnet))
    listed = await get_all(client, f"{V1}/logicalNetworks")
    pools = listed[0]["properties"]["subnets"][0]["properties"]["ipPools"]
    assert refs(pools) == ["/logicalNetworks/L/subnets/S/ipPools/P"]


async def test_get_of_a_child_collection(client: httpx.AsyncClient) -> None:
    parent = await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200)))
    response = await client.get(f"{ACL}/aclRules")
    assert response.status_code == 200
    assert response.json() == {"value": parent["properties"]["aclRules"], "nextLink": ""}


async def test_get_of_an_empty_child_collection(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl())
    response = await client.get(f"{ACL}/aclRules")
    assert response.status_code == 200
    assert response.json() == {"value": [], "nextLink": ""}


async def test_children_keep_the_order_they_were_written_in(client: httpx.AsyncClient) -> None:
    rules = (acl_rule("zeta", 300), acl_rule("alpha", 100), acl_rule("Mid", 200))
    await put(client, ACL, acl(*rules))
    assert ids(await get_all(client, f"{ACL}/aclRules")) == ["zeta", "alpha", "Mid"]


async def test_get_of_a_missing_resource_is_404_with_error_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{V1}/accessControlLists/nope")
    error = assert_error(response, 404, "NotFound")
    assert error["target"] == "/accessControlLists/nope"


async def test_get_of_a_missing_child_is_404(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(acl_rule("r1")))
    await assert_absent(client, f"{ACL}/aclRules/nope")


async def test_get_of_a_child_of_a_missing_parent_is_404(client: httpx.AsyncClient) -> None:
    await assert_absent(client, f"{V1}/accessControlLists/nope/aclRules/r1")


async def test_child_collection_of_a_missing_parent_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{V1}/accessControlLists/nope/aclRules")
    error = assert_error(response, 404, "NotFound")
    assert error["target"] == "/accessControlLists/nope"


async def test_grandchild_collection_of_a_missing_subnet_is_404(
    client: httpx.AsyncClient,
) -> None:
    await put(client, f"{V1}/logicalNetworks/L", {"properties": {}})
    await assert_absent(client, f"{V1}/logicalNetworks/L/subnets/nope/ipPools")


async def test_provisioning_state_of_every_node_is_succeeded(client: httpx.AsyncClient) -> None:
    listed = await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200)))
    states = [listed["properties"]["provisioningState"]]
    states += [r["properties"]["provisioningState"] for r in listed["properties"]["aclRules"]]
    assert states == ["Succeeded"] * 3
