"""loadBalancerMuxes: the MUX role of the software load balancer ([MS-NCNBI]
loadBalancerMuxes).

A mux announces the VIPs to the routers it peers with (``routerConfiguration``) and forwards
the flows of external clients to the hosts of the DIPs; it is their way in. ``server`` names
the host it runs on (our extension, as on NICs: NC learns it from the mux's virtual server);
that host's agent receives every VIP's forwarding state. ``configurationState`` (read-only)
says whether that host's agent is connected.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from controller.core.kinds import Kind
from controller.core.shape import Shape, default, nested, read_only
from controller.core.tree import Node
from controller.core.values import IPAddress, OptionalIPAddress
from controller.core.wire import WireModel
from controller.errors import InvalidInput
from controller.resources.refs import ServerRef
from controller.resources.slb_values import Asn


class PeerRouterConfiguration(WireModel):
    local_ip_address: OptionalIPAddress = Field(default=None, alias="localIPAddress")
    peer_asn: Asn = Field(alias="peerASN")
    router_ip_address: IPAddress = Field(alias="routerIPAddress")
    router_name: str | None = Field(default=None, max_length=256, alias="routerName")
    id: str | None = Field(default=None, max_length=256)


class RouterConfiguration(WireModel):
    local_asn: Asn = Field(alias="localASN")
    peer_router_configurations: list[PeerRouterConfiguration] = Field(
        default_factory=list, alias="peerRouterConfigurations"
    )


class LoadBalancerMuxProperties(WireModel):
    router_configuration: RouterConfiguration | None = Field(
        default=None, alias="routerConfiguration"
    )
    server: ServerRef | None = None


def validate_load_balancer_mux(node: Node) -> None:
    router = node.props(LoadBalancerMuxProperties).router_configuration
    if router is None:
        return
    seen: set[str] = set()
    for index, peer in enumerate(router.peer_router_configurations):
        if peer.router_ip_address in seen:
            raise InvalidInput(
                f"loadBalancerMux '{node.resource_id}' peers with {peer.router_ip_address} twice",
                target=node.target(
                    f"routerConfiguration.peerRouterConfigurations.{index}.routerIPAddress"
                ),
            )
        seen.add(peer.router_ip_address)


LOAD_BALANCER_MUXES = Kind(
    name="loadBalancerMuxes",
    title="LoadBalancerMux",
    properties=LoadBalancerMuxProperties,
    shape=Shape(
        nested("routerConfiguration", default("peerRouterConfigurations", [])),
        # NC's mux connections come from its virtual server, which we do not model.
        read_only("connections", [], list[dict[str, Any]]),
    ),
    validate=validate_load_balancer_mux,
    description="A MUX of the software load balancer: its host and its BGP peering.",
)

KINDS = (LOAD_BALANCER_MUXES,)
