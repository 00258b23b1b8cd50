"""PUT and DELETE semantics: create/replace, child URIs, preconditions, merge rules, ids."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import (
    acl,
    acl_rule,
    acl_rule_properties,
    ip_pool,
    logical_network,
    logical_subnet,
)
from tests.support.nbi import (
    V1,
    Json,
    assert_absent,
    assert_error,
    assert_holds,
    assert_stored,
    delete,
    get,
    get_all,
    ids,
    put,
)

ACL = f"{V1}/accessControlLists/A"
NETWORK = f"{V1}/logicalNetworks/L"


def rule_ids(resource: Json) -> list[str]:
    return ids(resource["properties"]["aclRules"])


# -- create and replace ---------------------------------------------------------------------


async def test_put_creates_with_201(client: httpx.AsyncClient) -> None:
    response = await client.put(ACL, json=acl(acl_rule("r1")))
    assert response.status_code == 201
    stored = await assert_stored(client, response.json())
    assert rule_ids(stored) == ["r1"]
    assert_holds(stored["properties"]["aclRules"][0]["properties"], acl_rule_properties())


async def test_put_replaces_with_200(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(inboundDefaultAction="Deny"))
    response = await client.put(ACL, json={"properties": {"outboundDefaultAction": "Deny"}})
    assert response.status_code == 200
    stored = (await assert_stored(client, response.json()))["properties"]
    assert stored["inboundDefaultAction"] == "Permit"
    assert stored["outboundDefaultAction"] == "Deny"


async def test_put_replaces_tags_and_metadata(client: httpx.AsyncClient) -> None:
    await put(client, ACL, {"tags": {"a": 1}, "resourceMetadata": {"client": "x"}})
    await put(client, ACL, {"tags": {"b": 2}, "properties": {}})
    stored = await get(client, ACL)
    assert stored["tags"] == {"b": 2}
    assert stored["resourceMetadata"] == {}


async def test_put_without_properties_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.put(ACL, json={})
    assert response.status_code == 201
    stored = await assert_stored(client, response.json())
    assert stored["properties"]["inboundDefaultAction"] == "Permit"
    assert stored["properties"]["aclRules"] == []


async def test_child_put_at_its_own_uri_creates_then_replaces(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(acl_rule("r1")))
    created = await client.put(f"{ACL}/aclRules/r2", json=acl_rule("r2", 200))
    assert created.status_code == 201
    assert created.json()["resourceRef"] == "/accessControlLists/A/aclRules/r2"
    assert_holds((await assert_stored(client, created.json()))["properties"], {"priority": 200})
    replaced = await client.put(f"{ACL}/aclRules/r2", json=acl_rule("r2", 250))
    assert replaced.status_code == 200
    assert replaced.json()["properties"]["priority"] == 250
    await assert_stored(client, replaced.json())
    stored = await get(client, ACL)
    assert rule_ids(stored) == ["r1", "r2"]
    assert stored["properties"]["aclRules"][1]["properties"]["priority"] == 250


async def test_child_put_without_resource_id_in_the_body(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl())
    body = {"properties": acl_rule_properties()}
    response = await client.put(f"{ACL}/aclRules/r9", json=body)
    assert response.status_code == 201
    assert response.json()["resourceId"] == "r9"
    stored = await assert_stored(client, response.json())
    assert_holds(stored["properties"], acl_rule_properties())


async def test_grandchild_put_at_its_own_uri(client: httpx.AsyncClient) -> None:
    await put(client, NETWORK, logical_network(logical_subnet("S", "10.0.0.0/24")))
    body = ip_pool(None, "10.0.0.10", "10.0.0.20")
    response = await client.put(f"{NETWORK}/subnets/S/ipPools/P", json=body)
    assert response.status_code == 201
    pool = await assert_stored(client, response.json())
    assert_holds(pool["properties"], body["properties"])
    stored = await get(client, f"{NETWORK}/subnets/S")
    assert [p["resourceId"] for p in stored["properties"]["ipPools"]] == ["P"]


async def test_child_put_keeps_the_siblings_and_parent_properties(
    client: httpx.AsyncClient,
) -> None:
    await put(client, ACL, acl(acl_rule("r1"), inboundDefaultAction="Deny"))
    await put(client, f"{ACL}/aclRules/r2", acl_rule("r2", 200))
    stored = await get(client, ACL)
    assert stored["properties"]["inboundDefaultAction"] == "Deny"
    assert rule_ids(stored) == ["r1", "r2"]


async def test_put_under_missing_parent_is_412(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{V1}/accessControlLists/nope/aclRules/r1", json=acl_rule("r1"))
    error = assert_error(response, 412, "PreconditionFailed")
    assert error["target"] == "/accessControlLists/nope"
    await assert_absent(client, f"{V1}/accessControlLists/nope")
    assert await get_all(client, f"{V1}/accessControlLists") == []


async def test_put_under_missing_intermediate_parent_is_412(client: httpx.AsyncClient) -> None:
    before = await put(client, NETWORK, {"properties": {}})
    body = ip_pool(None, "10.0.0.10", "10.0.0.20")
    response = await client.put(f"{NETWORK}/subnets/nope/ipPools/P", json=body)
    assert_error(response, 412, "PreconditionFailed")
    assert await get(client, NETWORK) == before


# -- delete ---------------------------------------------------------------------------------


async def test_delete_is_200_and_removes_the_children(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200)))
    response = await client.delete(ACL)
    assert response.status_code == 200
    await assert_absent(client, ACL)
    await assert_absent(client, f"{ACL}/aclRules/r1")
    await assert_absent(client, f"{ACL}/aclRules")
    assert await get_all(client, f"{V1}/accessControlLists") == []


async def test_recreated_resource_starts_without_the_old_children(
    client: httpx.AsyncClient,
) -> None:
    old = await put(client, ACL, acl(acl_rule("r1")))
    await delete(client, ACL)
    response = await client.put(ACL, json={"properties": {}})
    assert response.status_code == 201
    stored = await assert_stored(client, response.json())
    assert rule_ids(stored) == []
    assert stored["instanceId"] != old["instanceId"]
    await assert_absent(client, f"{ACL}/aclRules/r1")


async def test_delete_of_a_child_keeps_the_parent_and_siblings(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200)))
    await delete(client, f"{ACL}/aclRules/r1")
    assert rule_ids(await get(client, ACL)) == ["r2"]


async def test_delete_of_a_subnet_removes_its_pools(client: httpx.AsyncClient) -> None:
    pools = [ip_pool("P", "10.0.0.10", "10.0.0.20")]
    await put(client, NETWORK, logical_network(logical_subnet("S", "10.0.0.0/24", *pools)))
    await delete(client, f"{NETWORK}/subnets/S")
    await assert_absent(client, f"{NETWORK}/subnets/S/ipPools/P")
    assert (await get(client, NETWORK))["properties"]["subnets"] == []


async def test_delete_of_a_missing_resource_is_204(client: httpx.AsyncClient) -> None:
    others = await put(client, f"{V1}/accessControlLists/other", acl(acl_rule("r1")))
    response = await client.delete(f"{V1}/accessControlLists/nope")
    assert response.status_code == 204
    assert response.content == b""
    assert await get_all(client, f"{V1}/accessControlLists") == [others]


async def test_repeated_delete_is_204(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl())
    await delete(client, ACL)
    assert (await client.delete(ACL)).status_code == 204
    assert (await client.delete(ACL)).status_code == 204
    await assert_absent(client, ACL)


async def test_delete_of_a_missing_child_is_204(client: httpx.AsyncClient) -> None:
    before = await put(client, ACL, acl(acl_rule("r1")))
    assert (await client.delete(f"{ACL}/aclRules/nope")).status_code == 204
    assert (await client.delete(f"{V1}/accessControlLists/nope/aclRules/r1")).status_code == 204
    assert await get(client, ACL) == before


# -- preconditions --------------------------------------------------------------------------


async def test_put_with_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    stale = (await put(client, ACL, acl(acl_rule("r1"))))["etag"]
    current = await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200)))
    response = await client.put(ACL, json=acl(), headers={"If-Match": stale})
    assert_error(response, 412, "PreconditionFailed")
    assert await get(client, ACL) == current


async def test_child_put_with_stale_if_match_is_412(client: httpx.AsyncClient) -> None:
    stale = (await put(client, ACL, acl(acl_rule("r1"))))["etag"]
    current = await put(client, ACL, acl(acl_rule("r1", 150)))
    response = await client.put(
        f"{ACL}/aclRules/r1", json=acl_rule("r1", 300), headers={"If-Match": stale}
    )
    assert_error(response, 412, "PreconditionFailed")
    assert await get(client, ACL) == current


async def test_delete_with_stale_if_match_is_412_and_keeps_the_resource(
    client: httpx.AsyncClient,
) -> None:
    stale = (await put(client, ACL, acl(acl_rule("r1"))))["etag"]
    current = await put(client, ACL, acl(acl_rule("r1")))
    response = await client.delete(ACL, headers={"If-Match": stale})
    assert_error(response, 412, "PreconditionFailed")
    assert await get(client, ACL) == current


async def test_child_delete_with_stale_if_match_is_412(client: httpx.AsyncClient) -> None:
    stale = (await put(client, ACL, acl(acl_rule("r1"))))["etag"]
    current = await put(client, ACL, acl(acl_rule("r1")))
    response = await client.delete(f"{ACL}/aclRules/r1", headers={"If-Match": stale})
    assert_error(response, 412, "PreconditionFailed")
    assert await get(client, ACL) == current


async def test_put_with_current_if_match_succeeds(client: httpx.AsyncClient) -> None:
    current = (await put(client, ACL, acl()))["etag"]
    response = await client.put(ACL, json=acl(acl_rule("r1")), headers={"If-Match": current})
    assert response.status_code == 200
    assert response.json()["etag"] != current
    assert rule_ids(await assert_stored(client, response.json())) == ["r1"]


async def test_delete_with_current_if_match_succeeds(client: httpx.AsyncClient) -> None:
    current = (await put(client, ACL, acl()))["etag"]
    assert (await client.delete(ACL, headers={"If-Match": current})).status_code == 200
    await assert_absent(client, ACL)


async def test_child_put_with_the_parent_etag_succeeds(client: httpx.AsyncClient) -> None:
    current = (await put(client, ACL, acl(acl_rule("r1"))))["etag"]
    response = await client.put(
        f"{ACL}/aclRules/r1", json=acl_rule("r1", 300), headers={"If-Match": current}
    )
    assert response.status_code == 200
    stored = await assert_stored(client, response.json())
    assert stored["properties"]["priority"] == 300
    assert stored["etag"] != current


@pytest.mark.parametrize("form", ["star", "bare", "quoted", "upper", "list"])
async def test_if_match_forms_are_accepted(client: httpx.AsyncClient, form: str) -> None:
    etag = (await put(client, ACL, acl()))["etag"]
    guid = etag[3:-1]
    header = {
        "star": "*",
        "bare": guid,
        "quoted": f'"{guid}"',
        "upper": f'W/"{guid.upper()}"',
        "list": f'W/"00000000-0000-0000-0000-000000000000", {etag}',
    }[form]
    response = await client.put(ACL, json=acl(acl_rule("r1")), headers={"If-Match": header})
    assert response.status_code == 200, response.text
    assert rule_ids(await get(client, ACL)) == ["r1"]


async def test_if_match_on_a_missing_resource_is_412_and_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(ACL, json=acl(), headers={"If-Match": "*"})
    assert_error(response, 412, "PreconditionFailed")
    await assert_absent(client, ACL)


async def test_if_none_match_star_on_an_existing_resource_is_412(
    client: httpx.AsyncClient,
) -> None:
    current = await put(client, ACL, acl(acl_rule("r1")))
    response = await client.put(ACL, json=acl(), headers={"If-None-Match": "*"})
    assert_error(response, 412, "PreconditionFailed")
    assert await get(client, ACL) == current


async def test_if_none_match_star_creates_a_missing_resource(client: httpx.AsyncClient) -> None:
    response = await client.put(ACL, json=acl(acl_rule("r1")), headers={"If-None-Match": "*"})
    assert response.status_code == 201
    assert rule_ids(await assert_stored(client, response.json())) == ["r1"]


async def test_if_none_match_star_on_an_existing_child_is_412(client: httpx.AsyncClient) -> None:
    current = await put(client, ACL, acl(acl_rule("r1")))
    response = await client.put(
        f"{ACL}/aclRules/r1", json=acl_rule("r1", 300), headers={"If-None-Match": "*"}
    )
    assert_error(response, 412, "PreconditionFailed")
    assert await get(client, ACL) == current


async def test_if_none_match_star_creates_a_missing_child(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(acl_rule("r1")))
    response = await client.put(
        f"{ACL}/aclRules/r2", json=acl_rule("r2", 200), headers={"If-None-Match": "*"}
    )
    assert response.status_code == 201
    assert_holds((await assert_stored(client, response.json()))["properties"], {"priority": 200})
    assert rule_ids(await get(client, ACL)) == ["r1", "r2"]


async def test_body_etag_is_not_a_precondition(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl())
    body = {**acl(acl_rule("r1")), "etag": 'W/"00000000-0000-0000-0000-000000000000"'}
    response = await client.put(ACL, json=body)
    assert response.status_code == 200
    assert rule_ids(await assert_stored(client, response.json())) == ["r1"]


# -- merge rules ----------------------------------------------------------------------------


async def test_omitted_child_collection_keeps_the_stored_children(
    client: httpx.AsyncClient,
) -> None:
    before = await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200)))
    after = await put(client, ACL, {"properties": {"inboundDefaultAction": "Deny"}})
    await assert_stored(client, after)
    assert after["properties"]["aclRules"] == [
        {**r, "etag": after["etag"]} for r in before["properties"]["aclRules"]
    ]
    assert after["properties"]["inboundDefaultAction"] == "Deny"


async def test_null_child_collection_keeps_the_stored_children(
    client: httpx.AsyncClient,
) -> None:
    await put(client, ACL, acl(acl_rule("r1")))
    after = await put(client, ACL, {"properties": {"aclRules": None}})
    assert rule_ids(await assert_stored(client, after)) == ["r1"]


async def test_empty_child_collection_deletes_all_children(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200)))
    after = await put(client, ACL, acl())
    assert rule_ids(await assert_stored(client, after)) == []
    await assert_absent(client, f"{ACL}/aclRules/r1")


async def test_sent_child_collection_replaces_the_stored_one(client: httpx.AsyncClient) -> None:
    before = await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200)))
    after = await put(client, ACL, acl(acl_rule("r3", 300), acl_rule("r1", 150)))
    await assert_stored(client, after)
    assert rule_ids(after) == ["r3", "r1"]
    kept = after["properties"]["aclRules"][1]
    assert kept["instanceId"] == before["properties"]["aclRules"][0]["instanceId"]
    assert kept["properties"]["priority"] == 150
    await assert_absent(client, f"{ACL}/aclRules/r2")


async def test_children_match_case_insensitively_and_keep_id_and_casing(
    client: httpx.AsyncClient,
) -> None:
    before = await put(client, ACL, acl(acl_rule("Rule1")))
    after = await put(client, ACL, acl(acl_rule("RULE1", 200)))
    await assert_stored(client, after)
    child = after["properties"]["aclRules"][0]
    assert child["resourceId"] == "Rule1"
    assert child["resourceRef"] == "/accessControlLists/A/aclRules/Rule1"
    assert child["instanceId"] == before["properties"]["aclRules"][0]["instanceId"]
    assert child["properties"]["priority"] == 200


async def test_omitted_grandchild_collection_is_kept_on_a_child_put(
    client: httpx.AsyncClient,
) -> None:
    pools = [ip_pool("P", "10.0.0.10", "10.0.0.20")]
    await put(client, NETWORK, logical_network(logical_subnet("S", "10.0.0.0/24", *pools)))
    after = await put(
        client, f"{NETWORK}/subnets/S", {"properties": {"addressPrefix": "10.0.0.0/24"}}
    )
    stored = await assert_stored(client, after)
    assert [p["resourceId"] for p in stored["properties"]["ipPools"]] == ["P"]


async def test_omitted_grandchildren_are_kept_when_the_parent_resends_the_child(
    client: httpx.AsyncClient,
) -> None:
    pools = [ip_pool("P", "10.0.0.10", "10.0.0.20")]
    await put(client, NETWORK, logical_network(logical_subnet("S", "10.0.0.0/24", *pools)))
    bare_subnet = {"resourceId": "s", "properties": {"addressPrefix": "10.0.0.0/24"}}
    after = await put(client, NETWORK, {"properties": {"subnets": [bare_subnet]}})
    await assert_stored(client, after)
    pools_after = after["properties"]["subnets"][0]["properties"]["ipPools"]
    assert [p["resourceId"] for p in pools_after] == ["P"]


async def test_embedded_children_with_the_same_id_are_400(client: httpx.AsyncClient) -> None:
    current = await put(client, ACL, acl(acl_rule("r1")))
    response = await client.put(ACL, json=acl(acl_rule("r2"), acl_rule("R2", 200)))
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "/accessControlLists/A/properties/aclRules/1"
    assert await get(client, ACL) == current


async def test_embedded_child_without_resource_id_is_400(client: httpx.AsyncClient) -> None:
    child = {"properties": acl_rule_properties()}
    response = await client.put(ACL, json={"properties": {"aclRules": [child]}})
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "/accessControlLists/A/properties/aclRules/0/resourceId"
    await assert_absent(client, ACL)


async def test_child_collection_that_is_not_an_array_is_400(client: httpx.AsyncClient) -> None:
    response = await client.put(ACL, json={"properties": {"aclRules": acl_rule("r1")}})
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "/accessControlLists/A/properties/aclRules"
    await assert_absent(client, ACL)


# -- resource ids ---------------------------------------------------------------------------


async def test_body_resource_id_differing_from_the_uri_is_400(client: httpx.AsyncClient) -> None:
    response = await client.put(ACL, json={"resourceId": "B", "properties": {}})
    error = assert_error(response, 400, "ResourceIdMismatch")
    assert error["target"] == "/accessControlLists/A/resourceId"
    await assert_absent(client, ACL)
    await assert_absent(client, f"{V1}/accessControlLists/B")


async def test_resource_id_mismatch_on_update_changes_nothing(client: httpx.AsyncClient) -> None:
    current = await put(client, ACL, acl(acl_rule("r1")))
    response = await client.put(ACL, json={"resourceId": "B", **acl()})
    assert_error(response, 400, "ResourceIdMismatch")
    assert await get(client, ACL) == current


async def test_child_resource_id_mismatch_is_400(client: httpx.AsyncClient) -> None:
    current = await put(client, ACL, acl(acl_rule("r1")))
    response = await client.put(f"{ACL}/aclRules/r1", json=acl_rule("r2", 200))
    assert_error(response, 400, "ResourceIdMismatch")
    assert await get(client, ACL) == current


async def test_body_resource_id_matching_case_insensitively_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(ACL, json={"resourceId": "a", "properties": {}})
    assert response.status_code == 201
    assert (await assert_stored(client, response.json()))["resourceId"] == "A"


async def test_created_resource_takes_the_uri_casing(client: httpx.AsyncClient) -> None:
    response = await client.put(
        f"{V1}/accessControlLists/MyAcl", json={"resourceId": "MYACL", "properties": {}}
    )
    assert response.status_code == 201
    assert response.json()["resourceId"] == "MyAcl"
    assert response.json()["resourceRef"] == "/accessControlLists/MyAcl"
    await assert_stored(client, response.json())
    assert ids(await get_all(client, f"{V1}/accessControlLists")) == ["MyAcl"]


async def test_stored_casing_is_kept_when_written_via_another_casing(
    client: httpx.AsyncClient,
) -> None:
    created = await put(client, f"{V1}/accessControlLists/MyAcl", acl(acl_rule("r1")))
    response = await client.put(f"{V1}/accessControlLists/myacl", json=acl(acl_rule("r1", 200)))
    assert response.status_code == 200
    updated = await assert_stored(client, response.json())
    assert updated["resourceId"] == "MyAcl"
    assert updated["resourceRef"] == "/accessControlLists/MyAcl"
    assert updated["instanceId"] == created["instanceId"]
    assert ids(await get_all(client, f"{V1}/accessControlLists")) == ["MyAcl"]


async def test_child_written_via_a_differently_cased_parent_uses_the_stored_casing(
    client: httpx.AsyncClient,
) -> None:
    await put(client, f"{V1}/accessControlLists/MyAcl", acl())
    written = await put(client, f"{V1}/accessControlLists/MYACL/aclRules/r1", acl_rule("r1"))
    assert written["resourceRef"] == "/accessControlLists/MyAcl/aclRules/r1"
    await assert_stored(client, written)
    assert rule_ids(await get(client, f"{V1}/accessControlLists/MyAcl")) == ["r1"]


async def test_child_written_via_another_casing_keeps_its_stored_casing(
    client: httpx.AsyncClient,
) -> None:
    created = await put(client, ACL, acl(acl_rule("Rule1")))
    written = await put(client, f"{ACL}/aclRules/RULE1", acl_rule("rule1", 200))
    await assert_stored(client, written)
    assert written["resourceId"] == "Rule1"
    assert written["instanceId"] == created["properties"]["aclRules"][0]["instanceId"]
    assert rule_ids(await get(client, ACL)) == ["Rule1"]


@pytest.mark.parametrize("resource_id", ["has%20space%20", "x%25y", "tab%09id", "%20lead"])
async def test_invalid_resource_id_in_the_uri_is_400(
    client: httpx.AsyncClient, resource_id: str
) -> None:
    response = await client.put(f"{V1}/accessControlLists/{resource_id}", json={"properties": {}})
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "resourceId"
    assert await get_all(client, f"{V1}/accessControlLists") == []


async def test_encoded_slash_in_a_resource_id_is_not_a_resource(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(f"{V1}/accessControlLists/a%2Fb", json={"properties": {}})
    assert_error(response, 404, "NotFound")
    assert await get_all(client, f"{V1}/accessControlLists") == []


async def test_resource_id_with_url_escaped_characters_round_trips(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(f"{V1}/accessControlLists/Web%20Tier%20(prod)", json={})
    assert response.status_code == 201
    assert response.json()["resourceId"] == "Web Tier (prod)"
    await assert_stored(client, response.json())
    again = await client.get("/Networking/V1/accesscontrollists/web%20tier%20(PROD)")
    assert again.status_code == 200
    assert again.json()["resourceRef"] == "/accessControlLists/Web Tier (prod)"


@pytest.mark.parametrize("resource_id", [".", ".."])
async def test_dot_segment_as_an_embedded_child_id_is_400(
    client: httpx.AsyncClient, resource_id: str
) -> None:
    # A client would normalise ".../aclRules/.." away, so such a child could never be
    # addressed at its own URI.
    response = await client.put(ACL, json=acl(acl_rule(resource_id)))
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "/accessControlLists/A/properties/aclRules/0/resourceId"
    await assert_absent(client, ACL)


async def test_child_put_at_its_uri_keeps_its_position(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(acl_rule("r1"), acl_rule("r2", 200), acl_rule("r3", 300)))
    await put(client, f"{ACL}/aclRules/r1", acl_rule("r1", 150))
    stored = await get(client, ACL)
    assert rule_ids(stored) == ["r1", "r2", "r3"]
    assert stored["properties"]["aclRules"][0]["properties"]["priority"] == 150


async def test_children_keep_their_order_through_deletes_and_inserts(
    client: httpx.AsyncClient,
) -> None:
    """Positions only order siblings (a write keeps the stored ones where it can): after a
    delete leaves a gap, a child added at its URI goes last, and one written into the
    middle of the list lands where the list put it."""
    rules = [acl_rule(f"r{i}", 100 + i) for i in range(5)]
    await put(client, ACL, acl(*rules))
    await delete(client, f"{ACL}/aclRules/r1")
    await put(client, f"{ACL}/aclRules/r9", acl_rule("r9", 900))
    assert rule_ids(await get(client, ACL)) == ["r0", "r2", "r3", "r4", "r9"]
    middle = [rules[0], rules[2], acl_rule("r5", 500), rules[3], rules[4], acl_rule("r9", 900)]
    await put(client, ACL, acl(*middle))
    assert rule_ids(await get(client, ACL)) == ["r0", "r2", "r5", "r3", "r4", "r9"]
    await put(client, ACL, acl(*reversed(middle)))
    assert rule_ids(await get(client, ACL)) == ["r9", "r4", "r3", "r5", "r2", "r0"]


async def test_new_grandchild_via_differently_cased_parents_uses_stored_casing(
    client: httpx.AsyncClient,
) -> None:
    await put(client, NETWORK, logical_network(logical_subnet("Sub", "10.0.0.0/24")))
    body = ip_pool(None, "10.0.0.10", "10.0.0.20")
    response = await client.put(f"{V1}/LOGICALNETWORKS/l/Subnets/SUB/ipPools/NewPool", json=body)
    assert response.status_code == 201
    assert response.json()["resourceRef"] == "/logicalNetworks/L/subnets/Sub/ipPools/NewPool"
    pool = await assert_stored(client, response.json())
    assert_holds(pool["properties"], body["properties"])
