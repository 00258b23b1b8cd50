"""What NC itself answers goes back in: clients read a resource and PUT it back (PowerShell's
read-modify-write), also when moving from a real NC. The values below are NC's own renderings
(captured GET answers of a 2016 and a modern NC) that a stricter parser refused."""

from __future__ import annotations

import httpx

from tests.support.bodies import ip_configuration, nic, ref, route, route_table
from tests.support.nbi import assert_put_rejected, child, props, put
from tests.support.slb import PUBLIC_ADDRESSES, WEB, backend_pool, load_balancer, slb_fabric


async def test_a_blank_next_hop_is_no_next_hop(client: httpx.AsyncClient) -> None:
    # A 2016 NC answers a VnetLocal route with "nextHopIpAddress": "".
    body = route_table(route("local", "24.30.0.0/16", "VnetLocal", next_hop=""))
    created = await put(client, "/routeTables/rt", body, status=201)
    assert props(child(created, "routes", "local")) == {
        "provisioningState": "Succeeded",
        "addressPrefix": "24.30.0.0/16",
        "nextHopType": "VnetLocal",
    }
    # Blank is absent, so a virtual appliance still needs its address.
    await assert_put_rejected(
        client,
        "/routeTables/rt",
        route_table(route("nva", "0.0.0.0/0", next_hop=" ")),
        target="/routeTables/rt/routes/nva/properties/nextHopIpAddress",
    )


async def test_a_blank_peer_address_is_no_peer_address(client: httpx.AsyncClient) -> None:
    # A modern NC answers a mux's peers with "localIPAddress": "".
    peer = {"routerIPAddress": "10.70.38.24", "peerASN": 64708, "localIPAddress": ""}
    router = {"localASN": 64628, "peerRouterConfigurations": [peer]}
    body = {"properties": {"routerConfiguration": router}}
    created = await put(client, "/loadBalancerMuxes/mux", body, status=201)
    assert props(created)["routerConfiguration"]["peerRouterConfigurations"] == [
        {"routerIPAddress": "10.70.38.24", "peerASN": 64708}
    ]


async def test_a_public_ip_frontend_answered_with_a_blank_address_goes_back(
    client: httpx.AsyncClient,
) -> None:
    await slb_fabric(client)
    await put(client, "/publicIPAddresses/pip", {"properties": {"ipAddress": ""}})
    # As a modern NC renders a frontend of a public IP.
    fe = {"resourceId": "fe", "properties": {"publicIPAddress": ref("/publicIPAddresses/pip"),
                                             "privateIPAllocationMethod": "Dynamic",
                                             "privateIPAddress": ""}}  # fmt: skip
    body = load_balancer(frontends=(fe,), pools=(backend_pool("be"),))
    created = await put(client, "/loadBalancers/lb", body, status=201)
    frontend = props(child(created, "frontendIPConfigurations", "fe"))
    assert "privateIPAddress" not in frontend
    assert frontend["publicIPAddress"] == ref("/publicIPAddresses/pip")
    pip = await put(client, "/publicIPAddresses/pip", {"properties": {"ipAddress": " "}})
    assert props(pip)["ipAddress"] == PUBLIC_ADDRESSES[0]
    assert props(pip)["publicIPAllocationMethod"] == "Dynamic"


async def test_the_port_settings_nc_answers_go_back(client: httpx.AsyncClient) -> None:
    await slb_fabric(client)
    # A 2016 NC's portSettings of a NIC that never set them.
    nc_port_settings = {
        "macSpoofingEnabled": "Disabled",
        "arpGuardEnabled": "Disabled",
        "dhcpGuardEnabled": "Disabled",
        "stormLimit": 0,
        "portFlowLimit": 0,
        "iovWeight": 0,
        "iovInterruptModeration": "Off",
        "iovQueuePairsRequested": 0,
        "vmqWeight": 100,
    }
    body = nic(ip_configuration("ip1", WEB), portSettings=nc_port_settings)
    created = await put(client, "/networkInterfaces/vm1", body, status=201)
    assert props(created)["portSettings"] == nc_port_settings
