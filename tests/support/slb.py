"""Request bodies and a fabric for the software load balancing tests.

The factories follow ``tests.support.bodies``: keyword arguments are wire members sent as
given. ``slb_fabric`` builds what the SLB steps of the NC guides start from: a macPool, the
HNV provider network, a tenant virtual network ``Fabrikam`` with subnet ``Web``
(24.30.1.0/24) and a small one ``Tiny`` (24.30.2.0/29), the VIP logical networks
``PublicVIP`` (41.40.40.0/27, isPublic, pool .8-.15) and ``PrivateVIP`` (20.20.20.0/27, pool
.8-.11), and the load balancer manager naming both pools.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.bodies import (
    connection,
    credential,
    ip_configuration,
    ip_pool,
    logical_network,
    logical_subnet,
    mac_pool,
    nic,
    provider_network,
    ref,
    server,
    virtual_network,
    virtual_subnet,
)
from tests.support.nbi import get, put

Json = dict[str, Any]

VNET = "/virtualNetworks/Fabrikam"
WEB = f"{VNET}/subnets/Web"
TINY = f"{VNET}/subnets/Tiny"
PUBLIC_VIP = "/logicalNetworks/PublicVIP/subnets/PublicVIP_0"
PUBLIC_POOL = f"{PUBLIC_VIP}/ipPools/PublicVIP_Pool"
PRIVATE_VIP = "/logicalNetworks/PrivateVIP/subnets/PrivateVIP_0"
PRIVATE_POOL = f"{PRIVATE_VIP}/ipPools/PrivateVIP_Pool"
MANAGER = "/loadBalancerManager/config"
# What each VIP pool hands out.
PUBLIC_ADDRESSES = tuple(f"41.40.40.{h}" for h in range(8, 16))
PRIVATE_ADDRESSES = tuple(f"20.20.20.{h}" for h in range(8, 12))


def _resource(resource_id: str | None, properties: Json) -> Json:
    body: Json = {} if resource_id is None else {"resourceId": resource_id}
    body["properties"] = properties
    return body


def manager(*pools: str, **properties: object) -> Json:
    """loadBalancerManager/config with the VIP pools at ``pools``."""
    return _resource(
        None,
        {
            "loadBalancerManagerIPAddress": "10.10.56.100",
            "vipIpPools": [ref(pool) for pool in pools],
            **properties,
        },
    )


def public_ip(address: str | None = None, **properties: object) -> Json:
    """A public IP: Static at ``address`` when given, else Dynamic."""
    members: Json = {} if address is None else {"ipAddress": address}
    return _resource(None, {**members, **properties})


def frontend(
    resource_id: str | None,
    subnet: str | None = PUBLIC_VIP,
    address: str | None = None,
    **properties: object,
) -> Json:
    """A frontend in ``subnet`` (Static at ``address`` when given, else Dynamic); pass
    ``subnet=None, publicIPAddress=ref(...)`` for a public IP frontend."""
    members: Json = {} if subnet is None else {"subnet": ref(subnet)}
    if address is not None:
        members["privateIPAddress"] = address
    return _resource(resource_id, {**members, **properties})


def backend_pool(resource_id: str | None) -> Json:
    return _resource(resource_id, {})


def probe(
    resource_id: str | None,
    protocol: str = "Http",
    port: object = 80,
    request_path: str | None = "/health",
    **properties: object,
) -> Json:
    members: Json = {"protocol": protocol, "port": port}
    if request_path is not None:
        members["requestPath"] = request_path
    return _resource(resource_id, {**members, **properties})


def lb_rule(
    resource_id: str | None,
    frontends: tuple[str, ...],
    pool: str,
    *,
    protocol: str = "Tcp",
    frontend_port: object = 80,
    backend_port: object = None,
    probe_path: str | None = None,
    **properties: object,
) -> Json:
    """A load-balancing rule from ``frontends`` to ``pool`` (all paths)."""
    members: Json = {
        "protocol": protocol,
        "frontendPort": frontend_port,
        "frontendIPConfigurations": [ref(f) for f in frontends],
        "backendAddressPool": ref(pool),
    }
    if backend_port is not None:
        members["backendPort"] = backend_port
    if probe_path is not None:
        members["probe"] = ref(probe_path)
    return _resource(resource_id, {**members, **properties})


def inbound_nat_rule(
    resource_id: str | None,
    frontends: tuple[str, ...],
    frontend_port: object,
    backend_port: object = None,
    *,
    protocol: str = "Tcp",
    **properties: object,
) -> Json:
    members: Json = {
        "protocol": protocol,
        "frontendIPConfigurations": [ref(f) for f in frontends],
        "frontendPort": frontend_port,
    }
    if backend_port is not None:
        members["backendPort"] = backend_port
    return _resource(resource_id, {**members, **properties})


def outbound_nat_rule(
    resource_id: str | None, frontends: tuple[str, ...], pool: str, protocol: str = "All"
) -> Json:
    return _resource(
        resource_id,
        {
            "protocol": protocol,
            "frontendIPConfigurations": [ref(f) for f in frontends],
            "backendAddressPool": ref(pool),
        },
    )


def load_balancer(
    *,
    frontends: tuple[Json, ...] = (),
    pools: tuple[Json, ...] = (),
    probes: tuple[Json, ...] = (),
    rules: tuple[Json, ...] = (),
    nat_rules: tuple[Json, ...] = (),
    outbound_rules: tuple[Json, ...] = (),
) -> Json:
    """A load balancer with exactly these children."""
    return _resource(
        None,
        {
            "frontendIPConfigurations": list(frontends),
            "backendAddressPools": list(pools),
            "probes": list(probes),
            "loadBalancingRules": list(rules),
            "inboundNatRules": list(nat_rules),
            "outboundNatRules": list(outbound_rules),
        },
    )


def web_lb(name: str = "LB1", *, address: str | None = None) -> Json:
    """A public VIP load balancer: frontend FE1 in PublicVIP, pool BE1, Http probe P1 and
    rule R1 balancing TCP port 80 over BE1."""
    path = f"/loadBalancers/{name}"
    return load_balancer(
        frontends=(frontend("FE1", PUBLIC_VIP, address),),
        pools=(backend_pool("BE1"),),
        probes=(probe("P1"),),
        rules=(
            lb_rule(
                "R1",
                (f"{path}/frontendIPConfigurations/FE1",),
                f"{path}/backendAddressPools/BE1",
                probe_path=f"{path}/probes/P1",
            ),
        ),
    )


def dip_nic(config_id: str = "ip1", address: str | None = None, **properties: object) -> Json:
    """A NIC with one ipConfiguration in Web (Dynamic unless ``address``), its load balancing
    members (``loadBalancerBackendAddressPools=[ref(...)]``, ...) as ``properties``."""
    return nic(ip_configuration(config_id, WEB, address, **properties))


async def slb_fabric(client: httpx.AsyncClient, *, with_manager: bool = True) -> None:
    """The fabric of the module docstring."""
    await put(client, "/macPools/pool", mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1F-FF"))
    await put(client, "/logicalNetworks/HNVPA", provider_network())
    subnets = (virtual_subnet("Web", "24.30.1.0/24"), virtual_subnet("Tiny", "24.30.2.0/29"))
    await put(client, VNET, virtual_network(*subnets))
    public = logical_subnet(
        "PublicVIP_0",
        "41.40.40.0/27",
        ip_pool("PublicVIP_Pool", "41.40.40.8", "41.40.40.15"),
        isPublic=True,
        defaultGateways=["41.40.40.1"],
    )
    await put(client, "/logicalNetworks/PublicVIP", logical_network(public))
    private = logical_subnet(
        "PrivateVIP_0",
        "20.20.20.0/27",
        ip_pool("PrivateVIP_Pool", "20.20.20.8", "20.20.20.11"),
        defaultGateways=["20.20.20.1"],
    )
    await put(client, "/logicalNetworks/PrivateVIP", logical_network(private))
    if with_manager:
        await put(client, MANAGER, manager(PUBLIC_POOL, PRIVATE_POOL))


# A balanced deployment (``balanced_deployment``): DIP hosts h1 and h2, a mux host, and the
# DIP NIC of each host (its address in Web).
SLB_HOSTS = ("h1", "h2", "mux")
DIP_VMS = {"VM1": ("h1", "24.30.1.4"), "VM2": ("h2", "24.30.1.5")}


async def balanced_deployment(client: httpx.AsyncClient) -> dict[str, str]:
    """The ``slb_fabric``, hosts ``SLB_HOSTS`` and mux Mux1, ``web_lb()`` as LB1, and the
    ``DIP_VMS`` NICs in its pool BE1; the instanceIds of the hosts, of the probe P1 and of
    each VM's ipConfiguration ip1, by name."""
    await slb_fabric(client)
    await put(client, "/credentials/cert", credential("X509Certificate", value="AB12"))
    ids = {}
    for host in SLB_HOSTS:
        created = await put(
            client, f"/servers/{host}", server(connection("/credentials/cert", address=host))
        )
        ids[host] = created["instanceId"]
    await put(client, "/loadBalancerMuxes/Mux1", {"properties": {"server": ref("/servers/mux")}})
    lb = await put(client, "/loadBalancers/LB1", web_lb())
    ids["P1"] = next(p["instanceId"] for p in lb["properties"]["probes"])
    pool = ref("/loadBalancers/LB1/backendAddressPools/BE1")
    for vm, (host, address) in DIP_VMS.items():
        body = dip_nic("ip1", address, loadBalancerBackendAddressPools=[pool])
        body["properties"]["server"] = ref(f"/servers/{host}")
        await put(client, f"/networkInterfaces/{vm}", body)
        config = await get(client, f"/networkInterfaces/{vm}/ipConfigurations/ip1")
        ids[vm] = config["instanceId"]
    return ids
