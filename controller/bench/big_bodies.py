"""The names and bodies ``sdnc bench big`` sets up: fixed names (``bench-big-...``), so a kept
set-up is found again by the next run."""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson

from controller.bench.api import API

PREFIX = "bench-big"
# The virtual subnet: the NICs count up from .10 of its first half, the host's configurations
# from .10 of its second half.
SUBNET = ipaddress.IPv4Network("10.0.0.0/15")
HOST_ADDRESSES = ipaddress.IPv4Network("10.1.0.0/16")
MAX_NICS = 65_000
# The big load balancer's NAT rules take frontend ports from 10,000 up, the ones added from
# 45,000 up.
MAX_NAT_RULES = 30_000
NAT_PORTS, ADDED_NAT_PORTS = 10_000, 45_000


def nic_url(index: int) -> str:
    return f"{API}/networkInterfaces/{PREFIX}-nic-{index:05d}"


HOST_URL = f"{API}/networkInterfaces/{PREFIX}-host"
ACL_URL = f"{API}/accessControlLists/{PREFIX}-acl"
LB_URL = f"{API}/loadBalancers/{PREFIX}-lb"
LB_REF = LB_URL.removeprefix(API)
NETWORK_URL = f"{API}/virtualNetworks/{PREFIX}-vn"
PROVIDER_URL = f"{API}/logicalNetworks/{PREFIX}-pa"
SUBNET_REF = f"/virtualNetworks/{PREFIX}-vn/subnets/subnet-1"


def _mac(value: int) -> str:
    return "-".join(f"{value:012X}"[i : i + 2] for i in range(0, 12, 2))


def _config(name: str, address: ipaddress.IPv4Address) -> dict[str, Any]:
    return {
        "resourceId": name,
        "properties": {
            "privateIPAllocationMethod": "Static",
            "privateIPAddress": str(address),
            "subnet": {"resourceRef": SUBNET_REF},
        },
    }


def nic_body(index: int) -> bytes:
    address = SUBNET.network_address + 10 + index
    return _nic(0x02BB_0000_0000 + index, [_config("ip1", address)])


def host_body(configs: int) -> bytes:
    start = HOST_ADDRESSES.network_address + 10
    return _nic(0x02BC_0000_0000, [_config(f"c{j:05d}", start + j) for j in range(configs)])


def _nic(mac: int, configs: list[dict[str, Any]]) -> bytes:
    properties = {
        "privateMacAllocationMethod": "Static",
        "privateMacAddress": _mac(mac),
        "ipConfigurations": configs,
    }
    return orjson.dumps({"properties": properties})


def rule(index: int) -> dict[str, Any]:
    """The index-th rule: unique priority per direction, half of them each way."""
    return {
        "resourceId": f"r{index:05d}",
        "properties": {
            "protocol": "TCP",
            "sourcePortRange": "*",
            "destinationPortRange": str(1024 + index % 60000),
            "sourceAddressPrefix": "*",
            "destinationAddressPrefix": f"10.{index // 65536 % 256}.{index // 256 % 256}.0/24",
            "action": "Allow" if index % 3 else "Deny",
            "priority": index // 2 + 1,
            "type": "Inbound" if index % 2 == 0 else "Outbound",
        },
    }


def acl_body(rules: int) -> bytes:
    return orjson.dumps(
        {
            "properties": {
                "inboundDefaultAction": "Deny",
                "aclRules": [rule(i) for i in range(rules)],
            }
        }
    )


def nat_rule(port: int) -> dict[str, Any]:
    return {
        "protocol": "Tcp",
        "frontendPort": port,
        "backendPort": 3389,
        "frontendIPConfigurations": [{"resourceRef": f"{LB_REF}/frontendIPConfigurations/fe"}],
    }


def lb_body(nat_rules: int) -> bytes:
    """An internal load balancer (its VIP from the virtual subnet) with ``nat_rules`` inbound
    NAT rules, one frontend port each: a VM's RDP port each, say."""
    frontend = {"resourceId": "fe", "properties": {"subnet": {"resourceRef": SUBNET_REF}}}
    rules = [
        {"resourceId": f"n{i:05d}", "properties": nat_rule(NAT_PORTS + i)} for i in range(nat_rules)
    ]
    properties = {
        "frontendIPConfigurations": [frontend],
        "backendAddressPools": [{"resourceId": "be", "properties": {}}],
        "inboundNatRules": rules,
    }
    return orjson.dumps({"properties": properties})


def network_body() -> bytes:
    subnet = {"resourceId": "subnet-1", "properties": {"addressPrefix": str(SUBNET)}}
    properties = {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/8"]},
        "logicalNetwork": {"resourceRef": PROVIDER_URL.removeprefix(API)},
        "subnets": [subnet],
    }
    return orjson.dumps({"properties": properties})


PROVIDER_BODY = orjson.dumps({"properties": {"networkVirtualizationEnabled": True, "subnets": []}})
