"""Request bodies of ``sdnc bench api``: accessControlLists, logical and virtual networks,
macPools and network interfaces, distinct per serial number or run."""

from __future__ import annotations

from typing import Any

import orjson

from controller.bench.common import BenchError

RULES_PER_ACL = 3
# The smallest subnet the NIC phases allocate from: 65533 addresses.
MIN_SUBNET_HOST_BITS = 16
# macPools of runs are 2^24 MACs each, locally administered (02-..), placed by the run id.
MAC_POOL_BITS = 24
LOCAL_MAC_PREFIX = 0x02 << 40


def acl_body(serial: int) -> bytes:
    rules = [
        {
            "resourceId": f"rule-{j}",
            "properties": {
                "protocol": "TCP",
                "sourcePortRange": "*",
                "destinationPortRange": str(1000 + (serial + j) % 60000),
                "sourceAddressPrefix": "*",
                "destinationAddressPrefix": f"10.{serial % 256}.{j}.0/24",
                "action": "Allow" if j % 2 == 0 else "Deny",
                "priority": 100 + j * 10 + serial % 10,
                "type": "Inbound" if j < 2 else "Outbound",
                "description": f"bench rule {j} of {serial}",
            },
        }
        for j in range(RULES_PER_ACL)
    ]
    return orjson.dumps({"properties": {"inboundDefaultAction": "Deny", "aclRules": rules}})


def logical_network_body(index: int) -> bytes:
    third, second = index % 256, index // 256 % 256
    prefix = f"10.{second}.{third}"
    subnet = {
        "resourceId": "subnet-1",
        "properties": {
            "addressPrefix": f"{prefix}.0/24",
            "vlanID": index % 4000 + 1,
            "defaultGateways": [f"{prefix}.1"],
            "ipPools": [
                {
                    "resourceId": "pool-1",
                    "properties": {
                        "startIpAddress": f"{prefix}.10",
                        "endIpAddress": f"{prefix}.200",
                    },
                }
            ],
        },
    }
    return orjson.dumps({"properties": {"subnets": [subnet]}})


def provider_network_body() -> bytes:
    return orjson.dumps({"properties": {"networkVirtualizationEnabled": True, "subnets": []}})


def subnet_prefix(addresses: int) -> str:
    """A virtual subnet of 10.0.0.0/8 with room for ``addresses`` (besides its network,
    gateway and broadcast addresses), at least a /16."""
    bits = max(MIN_SUBNET_HOST_BITS, (addresses + 3 - 1).bit_length())
    if bits > 24:
        raise BenchError(f"{addresses} addresses do not fit in 10.0.0.0/8")
    return f"10.0.0.0/{32 - bits}"


def virtual_network_body(provider: str, prefix: str) -> bytes:
    subnet = {"resourceId": "subnet-1", "properties": {"addressPrefix": prefix}}
    return orjson.dumps(
        {
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/8"]},
                "logicalNetwork": {"resourceRef": provider},
                "subnets": [subnet],
            }
        }
    )


def mac_text(value: int) -> str:
    return "-".join(f"{value:012X}"[i : i + 2] for i in range(0, 12, 2))


def mac_pool_body(run: str) -> bytes:
    start = LOCAL_MAC_PREFIX | (int(run, 16) & 0xFFFF) << MAC_POOL_BITS
    end = start + (1 << MAC_POOL_BITS) - 1
    return orjson.dumps(
        {"properties": {"startMacAddress": mac_text(start), "endMacAddress": mac_text(end)}}
    )


def ip_configuration(subnet: str) -> dict[str, Any]:
    return {
        "privateIPAllocationMethod": "Dynamic",
        "subnet": {"resourceRef": subnet},
    }


def nic_body(subnet: str | None) -> bytes:
    configs = (
        [] if subnet is None else [{"resourceId": "ip1", "properties": ip_configuration(subnet)}]
    )
    return orjson.dumps(
        {"properties": {"privateMacAllocationMethod": "Dynamic", "ipConfigurations": configs}}
    )


def child_body(subnet: str) -> bytes:
    return orjson.dumps({"properties": ip_configuration(subnet)})
