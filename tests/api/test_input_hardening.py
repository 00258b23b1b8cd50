"""Every value is validated before it reaches the database or a codec (issue 8, items 4 and 6).

Each test here failed before its fix with a 500 (a charset Python cannot decode as text, an
integer beyond 64 bits reaching the JSON encoder of the store, a NUL reaching PostgreSQL) or with
a silently loose reading (``true`` stored as 1, one of two spellings of a member winning). Every
refusal is a 4xx in the error envelope that names the member, and changes nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from controller.api.body import find_duplicate_member
from tests.support.bodies import (
    acl,
    acl_rule,
    acl_rule_properties,
    credential,
    logical_network,
    logical_subnet,
    mac_pool,
    nic,
    ref,
    server,
    virtual_network,
)
from tests.support.figures import Figures
from tests.support.nbi import (
    PS_HEADERS,
    V1,
    assert_absent,
    assert_error,
    assert_put_rejected,
    get,
    get_all,
    props,
    put,
    url,
)

BEYOND_64_BITS = "1180591620717411303424"  # 2**70
ACL = "/accessControlLists/web"
NIC = "/networkInterfaces/vm1"
CREDENTIAL_BODY = b'{"properties": {"type": "X509Certificate", "value": "AB12"}}'


# -- charsets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "charset",
    ["rot13", "hex", "base64", "zlib", "bz2", "uu", "quopri", "punycode", "idna",
     "unicode_escape", "raw_unicode_escape", "undefined"],
)  # fmt: skip
async def test_a_codec_that_is_no_charset_is_415(client: httpx.AsyncClient, charset: str) -> None:
    response = await client.put(
        url("/credentials/c1"),
        content=CREDENTIAL_BODY,
        headers={"Content-Type": f"application/json; charset={charset}"},
    )
    assert_error(response, 415, "UnsupportedMediaType")
    await assert_absent(client, "/credentials/c1")


@pytest.mark.parametrize("charset", ["UTF-8", "utf-16", "latin-1", "windows-1252"])
async def test_text_charsets_are_still_read(client: httpx.AsyncClient, charset: str) -> None:
    response = await client.put(
        url("/credentials/c1"),
        content=CREDENTIAL_BODY.decode().encode(charset),
        headers={"Content-Type": f"application/json; charset={charset}"},
    )
    assert response.status_code == 201, response.text


# -- integers ---------------------------------------------------------------------------------


async def _with_mac_pool(client: httpx.AsyncClient) -> None:
    # With a pool the NIC would be written: without a range check the value reached the store.
    await put(client, "/macPools/pool", mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1F-FF"))


@pytest.mark.parametrize(
    ("port", "target"),
    [
        ({"stormLimit": BEYOND_64_BITS}, "portSettings.stormLimit"),
        ({"portFlowLimit": BEYOND_64_BITS}, "portSettings.portFlowLimit"),
        ({"stormLimit": "-" + BEYOND_64_BITS}, "portSettings.stormLimit"),
        ({"stormLimit": 2**32}, "portSettings.stormLimit"),
        ({"qosSettings": {"outboundMaximumMbps": BEYOND_64_BITS}},
         "portSettings.qosSettings.outboundMaximumMbps"),
        ({"qosSettings": {"inboundMaximumMbps": 2**63}},
         "portSettings.qosSettings.inboundMaximumMbps"),
        ({"qosSettings": {"outboundReservedValue": "9" * 64}},
         "portSettings.qosSettings.outboundReservedValue"),
        ({"vmqWeight": "9" * 65}, "portSettings.vmqWeight"),
    ],
)  # fmt: skip
async def test_integers_beyond_their_range_are_400(
    client: httpx.AsyncClient, port: dict[str, Any], target: str
) -> None:
    await _with_mac_pool(client)
    body = nic(portSettings=port)
    await assert_put_rejected(client, NIC, body, target=f"properties.{target}")


@pytest.mark.parametrize("value", [BEYOND_64_BITS, 65536, "0", 0, "1e3", "12.5", "", "0x10"])
async def test_acl_priority_out_of_range_or_not_an_integer_is_400(
    client: httpx.AsyncClient, value: object
) -> None:
    body = acl(acl_rule("r1", value))
    await assert_put_rejected(client, ACL, body, target="aclRules/r1/properties/priority")


async def test_integers_in_range_are_stored_as_numbers(client: httpx.AsyncClient) -> None:
    await _with_mac_pool(client)
    port = {"stormLimit": str(2**32 - 1), "qosSettings": {"outboundMaximumMbps": "1000000"}}
    stored = await put(client, NIC, nic(portSettings=port))
    assert props(stored)["portSettings"]["stormLimit"] == 2**32 - 1
    assert props(stored)["portSettings"]["qosSettings"]["outboundMaximumMbps"] == 1_000_000


# -- booleans are not numbers, numbers are not booleans ---------------------------------------


async def test_a_boolean_vlan_id_is_400(client: httpx.AsyncClient) -> None:
    body = logical_network(logical_subnet("s1", "10.0.0.0/24", vlanID=True))
    await assert_put_rejected(
        client, "/logicalNetworks/ln", body, target="subnets/s1/properties/vlanID"
    )


@pytest.mark.parametrize("value", [True, False, "true"])
async def test_a_boolean_priority_is_400(client: httpx.AsyncClient, value: object) -> None:
    body = acl(acl_rule("r1", value))
    await assert_put_rejected(client, ACL, body, target="aclRules/r1/properties/priority")


async def test_integers_sent_as_strings_are_still_read(client: httpx.AsyncClient) -> None:
    body = logical_network(logical_subnet("s1", "10.0.0.0/24", vlanID="11"))
    stored = await put(client, "/logicalNetworks/ln", body)
    assert props(props(stored)["subnets"][0])["vlanID"] == 11


@pytest.mark.parametrize("value", [1, 0, "1", "yes", "on"])
async def test_a_number_is_no_boolean(client: httpx.AsyncClient, value: object) -> None:
    body = logical_network(networkVirtualizationEnabled=value)
    await assert_put_rejected(
        client, "/logicalNetworks/ln", body, target="properties.networkVirtualizationEnabled"
    )


@pytest.mark.parametrize(("value", "expected"), [("True", True), ("FALSE", False), (True, True)])
async def test_booleans_as_strings_are_still_read(
    client: httpx.AsyncClient, value: object, expected: bool
) -> None:
    stored = await put(
        client, "/logicalNetworks/ln", logical_network(networkVirtualizationEnabled=value)
    )
    assert props(stored)["networkVirtualizationEnabled"] is expected


# -- NUL and other control characters in the path ---------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("segment", ["a%00b", "%00", "a%01b", "a%7Fb", "a%C2%85b", "tab%09"])
async def test_a_control_character_in_a_path_segment_is_400(
    client: httpx.AsyncClient, method: str, segment: str
) -> None:
    content = CREDENTIAL_BODY if method == "PUT" else None
    response = await client.request(
        method, f"{V1}/credentials/{segment}", content=content, headers=PS_HEADERS
    )
    assert_error(response, 400, "InvalidInput", "resourceId")
    assert await get_all(client, "/credentials") == []


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/logicalNetworks/a%00b/subnets", "parentResourceId"),
        ("/logicalNetworks/a%00b/subnets/s1", "parentResourceId"),
        ("/logicalNetworks/ln/subnets/s%001", "resourceId"),
        ("/logicalNetworks/ln/subnets/s1/ipPools/p%00", "resourceId"),
        ("/logicalNetworks/a%00/subnets/s1/ipPools", "grandParentResourceId"),
    ],
)
async def test_a_control_character_in_a_parent_id_is_400(
    client: httpx.AsyncClient, path: str, target: str
) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"{V1}{path}")
        assert_error(response, 400, "InvalidInput", target)


@pytest.mark.parametrize("segment", ["%FF", "%ED%A0%80", "a%C3"])
async def test_a_path_segment_that_is_not_utf8_is_400(
    client: httpx.AsyncClient, segment: str
) -> None:
    response = await client.get(f"{V1}/credentials/{segment}")
    assert_error(response, 400, "InvalidInput", "resourceId")


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_an_id_no_put_would_accept_is_400_on_every_method(
    client: httpx.AsyncClient, method: str
) -> None:
    for segment in ("a" * 257, "%20lead", "x%25y"):
        response = await client.request(method, f"{V1}/credentials/{segment}")
        assert_error(response, 400, "InvalidInput", "resourceId")


async def test_an_api_version_that_is_no_version_is_400(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/networking/x%00/credentials"), 400, "InvalidInput")
    assert_error(await client.get("/networking/vv/credentials"), 400, "InvalidInput", "apiVersion")
    assert_error(await client.get("/networking/v9/credentials"), 404, "NotFound")


# -- query parameters -------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", ["nan", "inf", "-inf", "1e400", "1_0", "0", "61", "", "x"])
@pytest.mark.parametrize("wait", ["&wait=applied", ""])
async def test_a_timeout_that_is_no_number_of_seconds_is_400(
    client: httpx.AsyncClient, seconds: str, wait: str
) -> None:
    path = f"{V1}/credentials/c1?timeout={seconds}{wait}"
    response = await client.put(path, content=CREDENTIAL_BODY, headers=PS_HEADERS)
    assert_error(response, 400, "InvalidInput", "timeout")
    await assert_absent(client, "/credentials/c1")


# -- ambiguous members ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"properties": {"type": "X509Certificate", "value": "A"},
          "Properties": {"type": "X509Certificate", "value": "B"}}, "properties"),
        ({"resourceId": "c1", "RESOURCEID": "c1",
          "properties": {"type": "X509Certificate", "value": "A"}}, "resourceId"),
        ({"properties": {"type": "X509Certificate", "value": "A", "Value": "B"}},
         "properties.value"),
        ({"properties": {"type": "X509Certificate", "value": "A", "Type": None}},
         "properties.type"),
    ],
)  # fmt: skip
async def test_two_spellings_of_one_member_are_400(
    client: httpx.AsyncClient, body: dict[str, Any], target: str
) -> None:
    await assert_put_rejected(client, "/credentials/c1", body, target=target)


async def test_two_spellings_of_a_nested_member_are_400(client: httpx.AsyncClient) -> None:
    connection = {
        "managementAddresses": ["10.0.0.1"],
        "ManagementAddresses": ["10.0.0.2"],
        "credential": ref("/credentials/c1"),
    }
    await put(client, "/credentials/c1", credential("X509Certificate", value="AB12"))
    await assert_put_rejected(
        client,
        "/servers/h1",
        server(connection),
        target="properties.connections[0].managementAddresses",
    )


async def test_two_spellings_of_a_reference_member_are_400(client: httpx.AsyncClient) -> None:
    body = virtual_network(
        logicalNetwork={"resourceRef": "/logicalNetworks/a", "ResourceRef": "/logicalNetworks/b"}
    )
    await assert_put_rejected(
        client, "/virtualNetworks/v1", body, target="properties.logicalNetwork.resourceRef"
    )


async def test_two_spellings_of_a_child_collection_are_400(client: httpx.AsyncClient) -> None:
    body = acl(acl_rule("r1"))
    body["properties"]["AclRules"] = [acl_rule("r2", 200)]
    await assert_put_rejected(client, ACL, body, target="properties.aclRules")


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ('{"properties": {}, "properties": {"inboundDefaultAction": "Deny"}}', f"{ACL}/properties"),
        ('{"properties": {"inboundDefaultAction": "Deny", "inboundDefaultAction": "Permit"}}',
         f"{ACL}/properties/inboundDefaultAction"),
        ('{"properties": {"aclRules": [{"resourceId": "r1", "properties": {}},'
         ' {"resourceId": "r2", "resourceId": "r3"}]}}', f"{ACL}/properties/aclRules/1/resourceId"),
        ('{"tags": {"a": 1, "a": 2}}', f"{ACL}/tags/a"),
        ('{"tags": {"a": [[{"b": 1, "\\u0062": 2}]]}}', f"{ACL}/tags/a/0/0/b"),
    ],
)  # fmt: skip
async def test_a_member_named_twice_in_the_json_text_is_400(
    client: httpx.AsyncClient, text: str, target: str
) -> None:
    response = await client.put(url(ACL), content=text.encode(), headers=PS_HEADERS)
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == target
    await assert_absent(client, ACL)


# -- PowerShell's ConvertTo-Json depth limit --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "target"),
    [
        ("/virtualNetworks/v1",
         virtual_network(addressSpace="System.Collections.Hashtable"),
         "properties.addressSpace"),
        ("/virtualNetworks/v1",
         virtual_network(logicalNetwork="@{resourceRef=/logicalNetworks/HNVPA}"),
         "properties.logicalNetwork"),
        ("/virtualNetworks/v1",
         virtual_network(addressSpace={"addressPrefixes": "System.Object[]"}),
         "properties.addressSpace.addressPrefixes"),
        (ACL, {"properties": "@{aclRules=System.Object[]; inboundDefaultAction=Deny}"},
         "properties"),
        (ACL, {"properties": {"aclRules": "System.Object[]"}}, "properties.aclRules"),
        (ACL, {"tags": "System.Collections.Hashtable", "properties": {}}, "tags"),
        (ACL, acl({"resourceId": "r1", "properties": "@{protocol=TCP; priority=100}"}),
         "aclRules/r1/properties"),
    ],
)  # fmt: skip
async def test_a_powershell_truncated_object_is_400_with_a_depth_hint(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], target: str
) -> None:
    error = await assert_put_rejected(client, path, body, target=target)
    assert "ConvertTo-Json -Depth" in error["message"]


# -- member types the envelope checks itself --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"resourceId": 5, "properties": {}}, "resourceId"),
        (acl({"resourceId": 5, "properties": acl_rule_properties()}),
         "properties/aclRules/0/resourceId"),
    ],
)  # fmt: skip
async def test_a_resource_id_that_is_no_string_is_400(
    client: httpx.AsyncClient, body: dict[str, Any], target: str
) -> None:
    await assert_put_rejected(client, "/accessControlLists/5", body, target=target)


async def test_free_form_tags_still_take_any_json(client: httpx.AsyncClient) -> None:
    tags = {"owner": "team", "n": 2**63 - 1, "x": 1.5e300, "list": [None, True, {"k": "v"}]}
    stored = await put(client, ACL, {"tags": tags, "properties": {}})
    assert stored["tags"] == tags
    assert (await get(client, ACL))["tags"] == tags


async def test_refusing_duplicate_keys_is_cheap_on_a_large_body(
    client: httpx.AsyncClient, figures: Figures
) -> None:
    """The duplicate-key pass re-reads the JSON text with the stdlib parser; on a 10,000-rule
    ACL it costs a small part of what the PUT costs anyway."""
    rules = [acl_rule(f"r{i}", i + 1, description=f"rule {i}") for i in range(10_000)]
    text = json.dumps(acl(*rules))
    started = time.perf_counter()
    assert find_duplicate_member(text) is None
    check = time.perf_counter() - started
    started = time.perf_counter()
    response = await client.put(url(ACL), content=text.encode(), headers=PS_HEADERS)
    whole = time.perf_counter() - started
    assert response.status_code == 201, response.text[:500]
    figures.record("body size", len(text) / 1e6, "MB")
    figures.record("duplicate-key check", check * 1000, "ms")
    figures.record("whole PUT of 10,000 rules", whole * 1000, "ms")
    assert check < whole / 2
