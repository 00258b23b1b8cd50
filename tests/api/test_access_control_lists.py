"""accessControlLists and their aclRules, embedded or written one by one at their own URI."""

from __future__ import annotations

import httpx
import pytest

from controller.service.heavy import HEAVY_ROWS
from tests.support import bodies
from tests.support.bodies import acl_rule, logical_network, logical_subnet
from tests.support.nbi import (
    Json,
    assert_absent,
    assert_delete_rejected,
    assert_put_rejected,
    child,
    delete,
    get,
    get_all,
    ids,
    props,
    put,
    refs,
)

ACL = "/accessControlLists/AllowAll"
RULES = f"{ACL}/aclRules"
# Clients also spell paths in lower case.
RULES_LOWER_CASE = RULES.lower()


# What New-NCAccessControlListRule fills in unless told otherwise.
POWERSHELL_RULE: Json = {
    "protocol": "All",
    "sourcePortRange": "0-65535",
    "destinationPortRange": "0-65535",
    "logging": "Enabled",
}


def rule(resource_id: str, priority: object = "100", **overrides: object) -> Json:
    """An aclRule as New-NCAccessControlListRule builds it: priority as a string."""
    members: Json = {**POWERSHELL_RULE, **overrides}
    return acl_rule(resource_id, priority, **members)


def acl(*rules: Json, **properties: object) -> Json:
    """An ACL as the SDN Express wrappers send it, echoing the empty reverse references."""
    members: Json = {"ipConfigurations": [], "subnet": [], **properties}
    return bodies.acl(*rules, resource_id="AllowAll", **members)


def rule_with(member: str, value: object) -> Json:
    return acl(rule("r1", **{member: value}))


def rule_props(resource: Json, resource_id: str) -> Json:
    return props(child(resource, "aclRules", resource_id))


# -- accepted input and canonical output ------------------------------------------------


async def test_allow_all_acl_in_microsoft_sample_style_is_canonical(
    client: httpx.AsyncClient,
) -> None:
    body = acl(
        rule("AllowAll_Inbound", "100", protocol="all", type="inbound", action="allow"),
        rule("AllowAllOutbound", "110", protocol="ALL", type="OUTBOUND", logging="disabled"),
    )
    created = await put(client, "/AccessControlLists/AllowAll", body, status=201)

    assert created["resourceRef"] == ACL
    assert props(created) | {"aclRules": None} == {
        "provisioningState": "Succeeded",
        "inboundDefaultAction": "Permit",
        "outboundDefaultAction": "Permit",
        "aclRules": None,
        "ipConfigurations": [],
        "subnets": [],
    }
    inbound = child(created, "aclRules", "AllowAll_Inbound")
    assert inbound["resourceRef"] == f"{RULES}/AllowAll_Inbound"
    assert inbound["etag"] == created["etag"]
    assert props(inbound) == {
        "provisioningState": "Succeeded",
        "protocol": "All",
        "sourcePortRange": "0-65535",
        "destinationPortRange": "0-65535",
        "sourceAddressPrefix": "*",
        "destinationAddressPrefix": "*",
        "action": "Allow",
        "priority": 100,
        "type": "Inbound",
        "logging": "Enabled",
    }
    outbound = rule_props(created, "AllowAllOutbound")
    assert (outbound["type"], outbound["logging"], outbound["priority"]) == (
        "Outbound",
        "Disabled",
        110,
    )
    assert await get(client, ACL) == created
    assert await get(client, f"{RULES}/AllowAll_Inbound") == inbound


async def test_same_priority_is_allowed_once_per_direction(client: httpx.AsyncClient) -> None:
    """The ZeroToSDN sample puts priority 110 on one Inbound and one Outbound rule."""
    body = acl(rule("in", "110", type="Inbound"), rule("out", 110, type="Outbound"))
    created = await put(client, ACL, body, status=201)
    assert [r["properties"]["priority"] for r in props(created)["aclRules"]] == [110, 110]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("100", 100), (" 100 ", 100), (100.0, 100), (1, 1), ("65535", 65535)],
    ids=repr,
)
async def test_priority_may_be_sent_as_a_string(
    client: httpx.AsyncClient, sent: object, stored: int
) -> None:
    created = await put(client, ACL, acl(rule("r1", sent)))
    assert rule_props(created, "r1")["priority"] == stored


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("tcp", "TCP"),
        ("Udp", "UDP"),
        ("icmpv4", "ICMPv4"),
        ("ICMPV6", "ICMPv6"),
        ("ALL", "All"),
    ],
)
async def test_protocol_spellings(client: httpx.AsyncClient, spelling: str, canonical: str) -> None:
    created = await put(client, ACL, acl(rule("r1", protocol=spelling)))
    assert rule_props(created, "r1")["protocol"] == canonical


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("*", "*"),
        ("80", "80"),
        ("0-65535", "0-65535"),
        ("80,443", "80,443"),
        (" 80 , 443 ", "80,443"),
        ("1024-2048,3389", "1024-2048,3389"),
        ("8080-8080", "8080"),
        (443, "443"),
    ],
    ids=repr,
)
async def test_port_ranges(client: httpx.AsyncClient, sent: object, stored: str) -> None:
    created = await put(client, ACL, acl(rule("r1", protocol="TCP", destinationPortRange=sent)))
    assert rule_props(created, "r1")["destinationPortRange"] == stored


@pytest.mark.parametrize(
    ("source", "destination", "stored"),
    [
        ("*", "10.0.0.5", ("*", "10.0.0.5")),
        ("10.0.0.0/8", "192.168.1.0/24", ("10.0.0.0/8", "192.168.1.0/24")),
        ("internet", "VIRTUALNETWORK", ("Internet", "VirtualNetwork")),
        ("AzureLoadBalancer", "10.1.0.0/16", ("AzureLoadBalancer", "10.1.0.0/16")),
        ("FD00:0:0:0::/8", "fd00::0005", ("fd00::/8", "fd00::5")),
        ("Internet", "fd00::/64", ("Internet", "fd00::/64")),
    ],
    ids=["any-and-ip", "cidrs", "tags", "lb-tag", "ipv6", "tag-and-ipv6"],
)
async def test_address_prefixes(
    client: httpx.AsyncClient, source: str, destination: str, stored: tuple[str, str]
) -> None:
    body = acl(rule("r1", sourceAddressPrefix=source, destinationAddressPrefix=destination))
    created = await put(client, ACL, body)
    found = rule_props(created, "r1")
    assert (found["sourceAddressPrefix"], found["destinationAddressPrefix"]) == stored


async def test_icmp_protocols_with_their_own_family(client: httpx.AsyncClient) -> None:
    body = acl(
        rule("v4", "200", protocol="ICMPv4", destinationAddressPrefix="10.0.0.0/8"),
        rule("v6", "201", protocol="ICMPv6", destinationAddressPrefix="fd00::/8"),
    )
    await put(client, ACL, body, status=201)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("deny", "Deny"), ("PERMIT", "Permit"), ("Allow", "Permit")],
)
async def test_default_actions(client: httpx.AsyncClient, sent: str, stored: str) -> None:
    body = acl(inboundDefaultAction=sent, outboundDefaultAction=None)
    created = await put(client, ACL, body)
    assert props(created)["inboundDefaultAction"] == stored
    assert props(created)["outboundDefaultAction"] == "Permit"


async def test_rules_added_one_by_one_at_their_own_uri(client: httpx.AsyncClient) -> None:
    created = await put(client, ACL, {"resourceId": "AllowAll", "properties": {}}, status=201)
    assert props(created)["aclRules"] == []

    first = await put(
        client,
        f"{RULES}/AllowRDP",
        rule("AllowRDP", "101", protocol="tcp", destinationPortRange="3389"),
        status=201,
    )
    second = await put(
        client,
        f"{RULES_LOWER_CASE}/AllowWeb",
        rule("AllowWeb", "102", protocol="TCP", destinationPortRange="80,443"),
        status=201,
    )
    assert first["etag"] != created["etag"]
    assert second["etag"] != first["etag"]

    stored = await get(client, ACL)
    assert stored["etag"] == second["etag"]
    assert refs(props(stored)["aclRules"]) == [f"{RULES}/AllowRDP", f"{RULES}/AllowWeb"]
    assert ids(await get_all(client, RULES)) == ["AllowRDP", "AllowWeb"]

    changed = await put(
        client, f"{RULES}/AllowRDP", rule("AllowRDP", "105", action="Deny"), status=200
    )
    assert props(changed)["action"] == "Deny"
    assert changed["instanceId"] == first["instanceId"]


async def test_re_put_of_what_get_returned_is_accepted(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(rule("in", "100"), rule("out", "100", type="Outbound")))
    fetched = await get(client, ACL)
    rewritten = await put(client, ACL, fetched, status=200)
    assert props(rewritten)["aclRules"] == [
        r | {"etag": rewritten["etag"]} for r in props(fetched)["aclRules"]
    ]


async def test_re_put_with_fewer_rules_deletes_the_others(client: httpx.AsyncClient) -> None:
    await put(client, ACL, acl(rule("a", "100"), rule("b", "200")))
    replaced = await put(client, ACL, acl(rule("b", "200")), status=200)
    assert ids(props(replaced)["aclRules"]) == ["b"]
    await assert_absent(client, f"{RULES}/a")


async def test_deleting_rules_and_the_acl(client: httpx.AsyncClient) -> None:
    created = await put(client, ACL, acl(rule("a", "100"), rule("b", "200")))
    await delete(client, f"{RULES}/a")
    await delete(client, f"{RULES}/a", status=204)
    after = await get(client, ACL)
    assert after["etag"] != created["etag"]
    assert ids(props(after)["aclRules"]) == ["b"]
    await delete(client, ACL)
    await assert_absent(client, ACL)
    await assert_absent(client, f"{RULES}/b")
    await delete(client, ACL, status=204)


async def test_acl_used_by_a_logical_subnet_lists_it_and_cannot_be_deleted(
    client: httpx.AsyncClient,
) -> None:
    await put(client, ACL, acl(rule("r1")))
    subnet = logical_subnet(
        "Mgmt",
        "10.184.108.0/24",
        vlanID="7",
        accessControlList={"ResourceRef": "/accesscontrollists/allowall"},
    )
    network = await put(client, "/logicalNetworks/Management", logical_network(subnet))
    assert props(child(network, "subnets", "Mgmt"))["accessControlList"] == {"resourceRef": ACL}

    used = await get(client, ACL)
    assert refs(props(used)["subnets"]) == ["/logicalNetworks/Management/subnets/Mgmt"]
    await assert_delete_rejected(client, ACL, target=ACL)
    # The ACL and its rules may still change; the link stays.
    await put(client, ACL, acl(rule("r1", "200"), rule("r2", "300")), status=200)
    await delete(client, f"{RULES}/r1")
    assert refs(props(await get(client, ACL))["subnets"]) == [
        "/logicalNetworks/Management/subnets/Mgmt"
    ]

    subnet["properties"]["accessControlList"] = None
    await put(client, "/logicalNetworks/Management/subnets/Mgmt", subnet, status=200)
    assert props(await get(client, ACL))["subnets"] == []
    await delete(client, ACL)


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("priority", [0, 65536, -1, "abc", 1.5, "1.5", "", None, [100]], ids=repr)
async def test_priority_must_be_an_integer_from_1_to_65535(
    client: httpx.AsyncClient, priority: object
) -> None:
    await assert_put_rejected(
        client, ACL, acl(rule("r1", priority)), target="aclRules/r1/properties/priority"
    )
    await assert_absent(client, ACL)


@pytest.mark.parametrize("priority", [0, "65536", "abc"], ids=repr)
async def test_priority_is_checked_at_the_rule_uri(
    client: httpx.AsyncClient, priority: object
) -> None:
    await put(client, ACL, acl(rule("r1", "100")))
    await assert_put_rejected(
        client, f"{RULES}/r2", rule("r2", priority), target="properties.priority"
    )
    await assert_absent(client, f"{RULES}/r2")


@pytest.mark.parametrize(
    ("first", "second"), [("100", "100"), (100, "100"), ("0100", 100)], ids=repr
)
async def test_duplicate_priority_in_one_direction_is_rejected(
    client: httpx.AsyncClient, first: object, second: object
) -> None:
    body = acl(rule("r1", first), rule("r2", second))
    error = await assert_put_rejected(client, ACL, body, target="aclRules/r2/properties/priority")
    assert "r1" in error["message"]
    await assert_absent(client, ACL)


async def test_duplicate_priority_added_at_the_rule_uri_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    await put(client, ACL, acl(rule("in", "100"), rule("out", "100", type="Outbound")))
    await assert_put_rejected(
        client,
        f"{RULES}/in2",
        rule("in2", 100, type="INBOUND"),
        target="aclRules/in2/properties/priority",
        watch=(f"{RULES}/in",),
    )
    await assert_absent(client, f"{RULES}/in2")
    # Moving an existing rule onto a taken priority is rejected the same way.
    await assert_put_rejected(
        client,
        f"{RULES}/out",
        rule("out", "100", type="Inbound"),
        target="aclRules/out/properties/priority",
    )


@pytest.mark.parametrize("protocol", ["GRE", "icmp", "ESP", "", 6])
async def test_protocol_must_be_known(client: httpx.AsyncClient, protocol: object) -> None:
    await assert_put_rejected(
        client, ACL, rule_with("protocol", protocol), target="aclRules/r1/properties/protocol"
    )


@pytest.mark.parametrize("member", ["sourcePortRange", "destinationPortRange"])
@pytest.mark.parametrize(
    "ports", ["70000", "90-80", "x", "", "80-", "-1", "80;443", "80,,443", "0-65536"], ids=repr
)
async def test_port_range_must_be_valid(client: httpx.AsyncClient, member: str, ports: str) -> None:
    await assert_put_rejected(
        client, ACL, rule_with(member, ports), target=f"aclRules/r1/properties/{member}"
    )


@pytest.mark.parametrize("member", ["sourceAddressPrefix", "destinationAddressPrefix"])
@pytest.mark.parametrize(
    "prefix",
    ["10.0.0.1/8", "10.0.0.300", "10.0.0.0/33", "Intranet", "", "any"],
    ids=repr,
)
async def test_address_prefix_must_be_valid(
    client: httpx.AsyncClient, member: str, prefix: str
) -> None:
    await assert_put_rejected(
        client, ACL, rule_with(member, prefix), target=f"aclRules/r1/properties/{member}"
    )


@pytest.mark.parametrize(
    ("source", "destination"),
    [("10.0.0.0/8", "fd00::/8"), ("fd00::5", "10.0.0.5")],
    ids=["v4-to-v6", "v6-to-v4"],
)
async def test_mixed_address_families_are_rejected(
    client: httpx.AsyncClient, source: str, destination: str
) -> None:
    body = acl(rule("r1", sourceAddressPrefix=source, destinationAddressPrefix=destination))
    await assert_put_rejected(
        client, ACL, body, target="aclRules/r1/properties/destinationAddressPrefix"
    )


@pytest.mark.parametrize(
    ("protocol", "prefix"),
    [("ICMPv4", "fd00::/8"), ("ICMPv6", "10.0.0.0/8")],
)
async def test_icmp_version_must_match_the_address_family(
    client: httpx.AsyncClient, protocol: str, prefix: str
) -> None:
    body = acl(rule("r1", protocol=protocol, sourceAddressPrefix=prefix))
    await assert_put_rejected(client, ACL, body, target="aclRules/r1/properties/protocol")


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("action", "Permit"),
        ("action", "Block"),
        ("type", "Both"),
        ("type", "in"),
        ("logging", "yes"),
        ("description", "d" * 1025),
    ],
    ids=repr,
)
async def test_rule_enums_and_description(
    client: httpx.AsyncClient, member: str, value: object
) -> None:
    await assert_put_rejected(
        client, ACL, rule_with(member, value), target=f"aclRules/r1/properties/{member}"
    )


@pytest.mark.parametrize(
    "member",
    [
        "protocol",
        "sourcePortRange",
        "destinationPortRange",
        "sourceAddressPrefix",
        "destinationAddressPrefix",
        "action",
        "priority",
        "type",
    ],
)
async def test_required_rule_members(client: httpx.AsyncClient, member: str) -> None:
    body = acl(rule("r1"))
    del body["properties"]["aclRules"][0]["properties"][member]
    await assert_put_rejected(client, ACL, body, target=f"aclRules/r1/properties/{member}")


@pytest.mark.parametrize("member", ["inboundDefaultAction", "outboundDefaultAction"])
async def test_default_action_must_be_permit_or_deny(
    client: httpx.AsyncClient, member: str
) -> None:
    await put(client, ACL, acl(rule("r1")))
    await assert_put_rejected(
        client,
        ACL,
        acl(rule("r1"), **{member: "Block"}),
        target=f"properties.{member}",
        watch=(f"{RULES}/r1",),
    )


async def test_a_big_list_is_checked_and_rewritten_like_a_small_one(
    client: httpx.AsyncClient,
) -> None:
    """Past a few hundred rows an aggregate is loaded, checked and rendered on the heavy-work
    thread (controller/service/heavy.py): the answers are the same."""
    rules = [rule(f"r{i:03d}", 100 + i) for i in range(HEAVY_ROWS + 10)]
    clash = rule("clash", 100 + HEAVY_ROWS)
    await assert_put_rejected(
        client, ACL, acl(*rules, clash), target="aclRules/clash/properties/priority"
    )
    await assert_absent(client, ACL)
    created = await put(client, ACL, acl(*rules), status=201)
    assert len(props(created)["aclRules"]) == len(rules)
    await assert_put_rejected(
        client,
        f"{RULES}/late",
        rule("late", 100 + HEAVY_ROWS),
        target="aclRules/late/properties/priority",
    )
    await put(client, f"{RULES}/late", rule("late", 60000), status=201)
    stored = await get(client, ACL)
    assert [r["resourceId"] for r in props(stored)["aclRules"]][-2:] == [
        rules[-1]["resourceId"],
        "late",
    ]
