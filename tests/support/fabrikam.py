"""The Fabrikam fabric the ipConfiguration and allocation tests build on: a macPool, the
provider network and a virtual network with a roomy subnet and a tiny one."""

from __future__ import annotations

import httpx

from tests.support.bodies import mac_pool, provider_network, virtual_network, virtual_subnet
from tests.support.nbi import Json, child, props, put

POOL = "/macPools/DefaultMacPool"
VNET = "/virtualNetworks/Fabrikam"
WEB = f"{VNET}/subnets/Web"  # 24.30.1.0/24
TINY = f"{VNET}/subnets/Tiny"  # 24.30.2.0/29: .2 to .6 to hand out
OTHER_VNET = "/virtualNetworks/Contoso"
OTHER_WEB = f"{OTHER_VNET}/subnets/Web"  # 24.30.1.0/24 too
NIC = "/networkInterfaces/WebVM1_Nic1"


async def build_fabrikam(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client, with a macPool, the provider network and the Fabrikam network."""
    await put(client, POOL, mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1F-FF"), status=201)
    await put(client, "/logicalNetworks/HNVPA", provider_network(), status=201)
    subnets = (virtual_subnet("Web", "24.30.1.0/24"), virtual_subnet("Tiny", "24.30.2.0/29"))
    await put(client, VNET, virtual_network(*subnets), status=201)
    return client


async def create_other_vnet(client: httpx.AsyncClient) -> None:
    await put(client, OTHER_VNET, virtual_network(virtual_subnet("Web", "24.30.1.0/24")))


def address(resource: Json, config_id: str | None = None) -> str:
    """The privateIPAddress of an ipConfiguration, or of ``config_id`` inside a NIC."""
    config = resource if config_id is None else child(resource, "ipConfigurations", config_id)
    found: str = props(config)["privateIPAddress"]
    return found
