"""Input tolerance of PowerShell-era clients; output is always canonical."""

from __future__ import annotations

import copy

import httpx
import pytest

from tests.support.bodies import (
    acl,
    acl_rule,
    acl_rule_properties,
    credential,
    ip_pool,
    logical_network,
    logical_subnet,
    mac_pool,
    ref,
)
from tests.support.nbi import (
    V1,
    Json,
    assert_absent,
    assert_stored,
    get,
    put,
    put_raw,
    without_etags,
)

ACL = f"{V1}/accessControlLists/A"
NETWORK = f"{V1}/logicalNetworks/L"

# How every rule sent here is stored and returned.
CANONICAL_RULE = acl_rule_properties(destinationAddressPrefix="10.0.0.0/24", logging="Enabled")


def rule(resource_id: str, priority: int = 100) -> Json:
    return acl_rule(resource_id, **{**CANONICAL_RULE, "priority": priority})


def rule_properties(resource: Json) -> Json:
    properties = dict(resource["properties"])
    del properties["provisioningState"]
    return properties


async def setup_acl_and_subnet(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(rule("r1")))
    subnet = logical_subnet(
        "S",
        "10.0.0.0/24",
        ip_pool("P", "10.0.0.10", "10.0.0.20"),
        accessControlList=ref("/accessControlLists/A"),
    )
    await put(client, NETWORK, logical_network(subnet))


async def test_member_names_in_any_case(client: httpx.AsyncClient) -> None:
    body = {
        "ResourceId": "A",
        "Properties": {
            "InboundDefaultAction": "Deny",
            "ACLRULES": [
                {
                    "RESOURCEID": "r1",
                    "PROPERTIES": {
                        "PROTOCOL": "TCP",
                        "SourcePortRange": "*",
                        "destinationportrange": "80",
                        "SourceAddressPrefix": "*",
                        "DESTINATIONADDRESSPREFIX": "10.0.0.0/24",
                        "Action": "Allow",
                        "Priority": 100,
                        "Type": "Inbound",
                    },
                }
            ],
        },
        "Tags": {"Owner": "ops"},
        "ResourceMetadata": {"Client": "PowerShell"},
    }
    created = await assert_stored(client, await put(client, ACL, body))
    assert created["properties"]["inboundDefaultAction"] == "Deny"
    assert rule_properties(created["properties"]["aclRules"][0]) == CANONICAL_RULE
    # Free-form members keep the client's spelling.
    assert created["tags"] == {"Owner": "ops"}
    assert created["resourceMetadata"] == {"Client": "PowerShell"}


async def test_numbers_as_strings(client: httpx.AsyncClient) -> None:
    await put(client, ACL, {"properties": {}})
    written = await put(
        client, f"{ACL}/aclRules/r1", {"properties": {**CANONICAL_RULE, "priority": "100"}}
    )
    assert written["properties"]["priority"] == 100
    stored = await get(client, f"{ACL}/aclRules/r1")
    assert stored["properties"]["priority"] == 100


@pytest.mark.parametrize(("sent", "stored"), [("True", True), ("true", True), ("false", False)])
async def test_booleans_as_strings(client: httpx.AsyncClient, sent: str, stored: bool) -> None:
    body = {"properties": {"networkVirtualizationEnabled": sent}}
    written = await put(client, NETWORK, body)
    assert written["properties"]["networkVirtualizationEnabled"] is stored
    read = await get(client, NETWORK)
    assert read["properties"]["networkVirtualizationEnabled"] is stored


async def test_vlan_id_as_string(client: httpx.AsyncClient) -> None:
    await put(client, NETWORK, {"properties": {}})
    subnet = {"properties": {"addressPrefix": "10.0.0.0/24", "vlanid": "0", "IsPublic": "False"}}
    written = await assert_stored(client, await put(client, f"{NETWORK}/subnets/S", subnet))
    assert written["properties"]["vlanID"] == 0
    assert written["properties"]["isPublic"] is False


@pytest.mark.parametrize(
    ("member", "sent", "canonical"),
    [
        ("protocol", "tcp", "TCP"),
        ("protocol", "ALL", "All"),
        ("protocol", "icmpv4", "ICMPv4"),
        ("action", "deny", "Deny"),
        ("type", "OUTBOUND", "Outbound"),
        ("logging", "disabled", "Disabled"),
    ],
)
async def test_enums_in_any_case(
    client: httpx.AsyncClient, member: str, sent: str, canonical: str
) -> None:
    await put(client, ACL, {"properties": {}})
    body = {"properties": {**CANONICAL_RULE, member: sent}}
    written = await put(client, f"{ACL}/aclRules/r1", body)
    assert written["properties"][member] == canonical
    assert (await get(client, f"{ACL}/aclRules/r1"))["properties"][member] == canonical


async def test_output_is_canonical_whatever_the_input_spelling(
    client: httpx.AsyncClient,
) -> None:
    await put(client, ACL, {"properties": {}})
    sloppy = {
        "properties": {
            "Protocol": "tcp",
            "sourceportrange": " * ",
            "DestinationPortRange": "80-80",
            "sourceAddressPrefix": "*",
            "destinationAddressPrefix": "10.0.0.0/24",
            "action": "ALLOW",
            "priority": "100",
            "type": "inbound",
            "logging": "ENABLED",
        }
    }
    written = await put(client, f"{ACL}/aclRules/r1", sloppy)
    assert rule_properties(await assert_stored(client, written)) == CANONICAL_RULE


async def test_null_members_are_treated_as_absent(client: httpx.AsyncClient) -> None:
    body = {
        "resourceId": None,
        "tags": None,
        "resourceMetadata": None,
        "etag": None,
        "properties": {
            "inboundDefaultAction": None,
            "outboundDefaultAction": "Deny",
            "aclRules": [
                {"resourceId": "r1", "properties": {**CANONICAL_RULE, "description": None}}
            ],
        },
    }
    written = await assert_stored(client, await put(client, ACL, body))
    assert written["tags"] == {}
    assert written["resourceMetadata"] == {}
    assert written["properties"]["inboundDefaultAction"] == "Permit"
    assert written["properties"]["outboundDefaultAction"] == "Deny"
    assert "description" not in written["properties"]["aclRules"][0]["properties"]


async def test_unknown_members_are_ignored(client: httpx.AsyncClient) -> None:
    body = {
        "unknownEnvelopeMember": {"x": 1},
        "properties": {
            "futureProperty": [1, 2, 3],
            "aclRules": [
                {"resourceId": "r1", "somethingNew": True, "properties": {**CANONICAL_RULE, "x": 1}}
            ],
        },
    }
    written = await assert_stored(client, await put(client, ACL, body))
    assert "unknownEnvelopeMember" not in written
    assert "futureProperty" not in written["properties"]
    assert rule_properties(written["properties"]["aclRules"][0]) == CANONICAL_RULE


async def test_read_only_members_sent_by_clients_are_ignored(client: httpx.AsyncClient) -> None:
    body = {
        "resourceRef": "/accessControlLists/Other",
        "instanceId": "11111111-1111-1111-1111-111111111111",
        "etag": 'W/"22222222-2222-2222-2222-222222222222"',
        "properties": {
            "provisioningState": "Failed",
            "configurationState": {"status": "Failure"},
            "subnets": [{"resourceRef": "/logicalNetworks/X/subnets/Y"}],
            "ipConfigurations": [],
        },
    }
    written = await assert_stored(client, await put(client, ACL, body))
    assert written["resourceRef"] == "/accessControlLists/A"
    assert written["instanceId"] != "11111111-1111-1111-1111-111111111111"
    assert written["etag"] != body["etag"]
    assert written["properties"]["provisioningState"] == "Succeeded"
    assert written["properties"]["subnets"] == []
    assert "configurationState" not in written["properties"]
    await assert_absent(client, f"{V1}/accessControlLists/Other")


async def test_echoing_a_get_back_changes_only_the_etag(client: httpx.AsyncClient) -> None:
    await put(client, ACL, {"tags": {"t": 1}, **acl(rule("r1"), rule("r2", 200))})
    before = await get(client, ACL)
    after = await put(client, ACL, before, status=200)
    assert after["etag"] != before["etag"]
    assert without_etags(after) == without_etags(before)
    assert without_etags(await get(client, ACL)) == without_etags(before)


async def test_echoing_a_logical_network_back_keeps_references_and_pools(
    client: httpx.AsyncClient,
) -> None:
    await setup_acl_and_subnet(client)
    before = await get(client, NETWORK)
    echoed = await assert_stored(client, await put(client, NETWORK, before, status=200))
    assert without_etags(echoed) == without_etags(before)
    used = await get(client, ACL)
    assert used["properties"]["subnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]


async def test_echoing_an_acl_with_back_references_back_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await setup_acl_and_subnet(client)
    before = await get(client, ACL)
    assert before["properties"]["subnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]
    echoed = await assert_stored(client, await put(client, ACL, before, status=200))
    assert without_etags(echoed) == without_etags(before)


async def test_echoing_a_child_get_back_to_the_child_uri(client: httpx.AsyncClient) -> None:
    await setup_acl_and_subnet(client)
    before = await get(client, f"{NETWORK}/subnets/S")
    echoed = await put(client, f"{NETWORK}/subnets/S", before, status=200)
    assert without_etags(await assert_stored(client, echoed)) == without_etags(before)


async def test_read_modify_write_of_one_member(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(rule("r1"), rule("r2", 200)))
    document = copy.deepcopy(await get(client, ACL))
    document["properties"]["aclRules"][1]["properties"]["priority"] = "250"
    document["properties"]["inboundDefaultAction"] = "deny"
    written = await assert_stored(client, await put(client, ACL, document))
    assert [r["properties"]["priority"] for r in written["properties"]["aclRules"]] == [100, 250]
    assert written["properties"]["inboundDefaultAction"] == "Deny"


async def test_whole_resource_object_where_a_reference_is_expected(
    client: httpx.AsyncClient,
) -> None:
    await put(client, ACL, acl(rule("r1")))
    whole_acl = await get(client, ACL)
    await put(client, NETWORK, {"properties": {}})
    body = logical_subnet(None, "10.0.0.0/24", accessControlList=whole_acl)
    written = await assert_stored(client, await put(client, f"{NETWORK}/subnets/S", body))
    assert written["properties"]["accessControlList"] == {"resourceRef": "/accessControlLists/A"}
    used = await get(client, ACL)
    assert used["properties"]["subnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]


@pytest.mark.parametrize(
    "reference",
    [
        {"ResourceRef": "/accessControlLists/A"},
        {"resourceRef": "/accesscontrollists/a"},
        {"resourceRef": "/networking/v1/accessControlLists/A"},
        {"resourceRef": "/Networking/V4/AccessControlLists/A/"},
    ],
)
async def test_reference_spellings_are_stored_canonically(
    client: httpx.AsyncClient, reference: dict[str, str]
) -> None:
    await put(client, ACL, {"properties": {}})
    await put(client, NETWORK, {"properties": {}})
    body = logical_subnet(None, "10.0.0.0/24", accessControlList=reference)
    written = await assert_stored(client, await put(client, f"{NETWORK}/subnets/S", body))
    assert written["properties"]["accessControlList"] == {"resourceRef": "/accessControlLists/A"}
    used = await get(client, ACL)
    assert used["properties"]["subnets"] == [{"resourceRef": "/logicalNetworks/L/subnets/S"}]


async def test_utf8_byte_order_mark_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.put(
        ACL,
        content=b'\xef\xbb\xbf{"tags": {"bom": 1}, "properties": {}}',
        headers={"Content-Type": "application/json; charset=UTF-8"},
    )
    assert response.status_code == 201
    assert (await assert_stored(client, response.json()))["tags"] == {"bom": 1}


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=UTF-8", "Application/JSON", "text/json"]
)
async def test_json_content_type_spellings(client: httpx.AsyncClient, content_type: str) -> None:
    response = await client.put(
        ACL,
        content=b'{"properties": {"inboundDefaultAction": "Deny"}}',
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 201
    stored = await assert_stored(client, response.json())
    assert stored["properties"]["inboundDefaultAction"] == "Deny"


async def test_echoing_a_password_credential_back_keeps_the_secret(
    client: httpx.AsyncClient,
) -> None:
    url = f"{V1}/credentials/C"
    body = credential("UsernamePassword", userName="admin", value="s3cret")
    created = await put(client, url, body)
    assert "value" not in created["properties"]
    echoed = await put_raw(client, url, await get(client, url))
    # Without the stored password the credential would be invalid (no value): it was kept.
    assert echoed.status_code == 200, echoed.text
    assert without_etags(await assert_stored(client, echoed.json())) == without_etags(created)
    assert "s3cret" not in echoed.text


async def test_echoing_a_mac_pool_with_computed_usage_back(client: httpx.AsyncClient) -> None:
    url = f"{V1}/macPools/M"
    created = await put(client, url, mac_pool("001dd8b71c00", "00:1D:D8:B7:1C:FF"))
    await assert_stored(client, created)
    assert created["properties"]["startMacAddress"] == "00-1D-D8-B7-1C-00"
    assert created["properties"]["endMacAddress"] == "00-1D-D8-B7-1C-FF"
    echoed = await assert_stored(client, await put(client, url, created, status=200))
    assert without_etags(echoed) == without_etags(created)
