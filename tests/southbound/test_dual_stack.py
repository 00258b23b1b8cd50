"""A dual-stack NIC (an ipConfiguration in an IPv4 subnet and one in an IPv6 subnet of the same
virtual network) as the hosts' agents receive it: two endpoints on its own host, two mappings on the
others, and a network object for the IPv6 subnet with its first address as the gateway."""

from __future__ import annotations

from controller.store.database import Database
from tests.support.bodies import ip_configuration, nic, ref, virtual_network, virtual_subnet
from tests.support.nbi import get, put
from tests.support.southbound import (
    BLUE_WEB,
    PROVIDER,
    VNET_BLUE,
    Agents,
    Fabric,
    InProcessController,
    applied,
    reference_policy,
    revision_of,
)

WEB6 = f"{VNET_BLUE}/subnets/web6"


async def test_a_dual_stack_nic_is_an_endpoint_and_a_mapping_per_family(
    controller: InProcessController,
    agents: Agents,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    http = controller.http
    running = {
        host: agents.start(host, agent_tokens[host], provider_address=PROVIDER[host])
        for host in ("hostA", "hostB")
    }
    subnets = (virtual_subnet("web", "24.30.1.0/24"), virtual_subnet("web6", "2001:db8:30:1::/64"))
    await put(
        http, VNET_BLUE, virtual_network(*subnets, prefixes=("24.30.0.0/16", "2001:db8:30::/48"))
    )
    body = nic(
        ip_configuration("ip", BLUE_WEB, "24.30.1.40"),
        ip_configuration("ip6", WEB6, privateIPAddressVersion="IPv6"),  # dynamic
        privateMacAddress="00155D000D01",
        server=ref("/servers/hostA"),
    )
    await put(http, "/networkInterfaces/d1", body)
    ids = {
        name: (await get(http, f"/networkInterfaces/d1/ipConfigurations/{name}"))["instanceId"]
        for name in ("ip", "ip6")
    }
    web6 = (await get(http, WEB6))["instanceId"]

    revision = await revision_of(database)
    for agent in running.values():
        await applied(agent, revision)
    on_a, on_b = (running[host].state.objects for host in ("hostA", "hostB"))
    _, reference = await reference_policy(database)
    assert (on_a, on_b) == (reference(fabric.servers["hostA"]), reference(fabric.servers["hostB"]))
    v4, v6 = on_a[f"endpoint/{ids['ip']}"], on_a[f"endpoint/{ids['ip6']}"]
    assert (v6["ip"], v6["prefixLength"], v6["gateway"]) == (
        "2001:db8:30:1::2",
        64,
        "2001:db8:30:1::1",
    )
    assert (v6["nic"], v6["mac"], v6["virtualNetwork"]) == (
        v4["nic"],
        v4["mac"],
        v4["virtualNetwork"],
    )
    assert v6["vsid"] != v4["vsid"]
    network = on_a[f"network/{web6}"]
    assert (network["prefix"], network["gateway"], network["vsid"]) == (
        "2001:db8:30:1::/64", "2001:db8:30:1::1", v6["vsid"]
    )  # fmt: skip
    assert on_b[f"network/{web6}"] == network
    mapping = on_b[f"mapping/{ids['ip6']}"]
    assert (mapping["ip"], mapping["mac"], mapping["vsid"]) == (
        "2001:db8:30:1::2",
        v4["mac"],
        v6["vsid"],
    )
    assert on_b[f"mapping/{ids['ip']}"]["ip"] == "24.30.1.40"
