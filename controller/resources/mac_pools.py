"""macPools ([MS-NCNBI] macPools; reference 5.2).

A range of MAC addresses from which NICs with ``privateMacAllocationMethod: Dynamic`` (and
host vNICs) get their MAC. Ranges of different pools never overlap, so a MAC is allocated from
exactly one pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from controller.core.kinds import Facts, Kind
from controller.core.tree import Node
from controller.core.values import DashedMac, parse_mac
from controller.core.wire import WireModel
from controller.errors import InvalidInput

_FIRST_OCTET_SHIFT = 40
_MULTICAST_BIT = 1 << _FIRST_OCTET_SHIFT


class MacPoolProperties(WireModel):
    start_mac_address: DashedMac = Field(alias="startMacAddress")
    end_mac_address: DashedMac = Field(alias="endMacAddress")

    def bounds(self) -> tuple[int, int]:
        return parse_mac(self.start_mac_address), parse_mac(self.end_mac_address)


def validate_mac_pool(node: Node) -> None:
    start, end = node.props(MacPoolProperties).bounds()
    if start > end:
        raise InvalidInput(
            f"macPool '{node.resource_id}': startMacAddress is above endMacAddress",
            target=node.target("startMacAddress"),
        )
    if start & _MULTICAST_BIT:
        raise InvalidInput(
            f"macPool '{node.resource_id}': a NIC MAC must be unicast (first octet even)",
            target=node.target("startMacAddress"),
        )
    # A range whose ends differ in the first octet spans every MAC of the odd first octet
    # after the start's, and those are multicast addresses.
    if end & _MULTICAST_BIT or start >> _FIRST_OCTET_SHIFT != end >> _FIRST_OCTET_SHIFT:
        raise InvalidInput(
            f"macPool '{node.resource_id}': the range reaches multicast addresses (odd first "
            "octet); a pool must stay within one first octet",
            target=node.target("endMacAddress"),
        )


def check_no_overlap(node: Node, peers: Sequence[Node]) -> None:
    start, end = node.props(MacPoolProperties).bounds()
    for peer in peers:
        peer_start, peer_end = peer.props(MacPoolProperties).bounds()
        if start <= peer_end and peer_start <= end:
            raise InvalidInput(
                f"macPool '{node.resource_id}' overlaps macPool '{peer.resource_id}'",
                target=node.target("startMacAddress"),
            )


def mac_pool_usage(props: WireModel, facts: Facts) -> dict[str, Any]:
    assert isinstance(props, MacPoolProperties)
    start, end = props.bounds()
    return {
        "usage": {
            "numberOfMacAddresses": end - start + 1,
            "numberofMacAddressesAllocated": facts.allocated,
        }
    }


MAC_POOLS = Kind(
    name="macPools",
    title="MacPool",
    properties=MacPoolProperties,
    validate=validate_mac_pool,
    check_peers=check_no_overlap,
    computed=mac_pool_usage,
    computed_members=(("usage", dict[str, int]),),
    description="A range of MAC addresses for dynamically addressed network interfaces.",
)

KINDS = (MAC_POOLS,)
