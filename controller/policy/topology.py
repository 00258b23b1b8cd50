"""The compiler's input: the parts of the northbound model that shape host policy.

Every committed write of an aggregate (a virtual network with its subnets, a NIC with its
ipConfigurations, an ACL with its rules, ...) arrives as a *document*: the rows of the
aggregate in canonical NBI JSON. ``entities_of`` turns one document into typed, immutable
entities. Entities refer to each other by lower-cased resourceRef (``key``), the way the NBI
documents do; southbound objects are named by instanceId.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class Server:
    key: str
    id: str


@dataclass(frozen=True)
class VirtualNetwork:
    key: str
    id: str


@dataclass(frozen=True)
class Subnet:
    key: str
    id: str
    vnet: str  # key of the virtual network
    prefix: str
    vsid: int | None
    acl: str | None  # key of the ACL
    route_table: str | None  # key of the route table
    gateway: str  # the subnet's first address
    prefix_length: int


@dataclass(frozen=True)
class Nic:
    key: str
    id: str
    server: str | None  # key of the server
    mac: str | None
    inbound_mbps: int | None
    outbound_mbps: int | None


@dataclass(frozen=True)
class IpConfig:
    key: str
    id: str
    nic: str  # key of the NIC
    ip: str | None
    subnet: str | None  # key of the subnet (virtual or logical)
    acl: str | None


@dataclass(frozen=True)
class Acl:
    key: str
    id: str
    inbound_default: str
    outbound_default: str
    rules: tuple[Json, ...]


@dataclass(frozen=True)
class RouteTable:
    key: str
    id: str
    routes: tuple[Json, ...]


@dataclass(frozen=True)
class Fabric:
    """Deployment-wide settings (virtualNetworkManager/configuration)."""

    key: str
    encapsulation: str


@dataclass(frozen=True)
class ProviderAddress:
    """The provider (underlay) address a host's agent reported; key is the server's key."""

    key: str
    address: str


Entity = (
    Server | VirtualNetwork | Subnet | Nic | IpConfig | Acl | RouteTable | Fabric | ProviderAddress
)


def _ref(properties: Mapping[str, Any], member: str) -> str | None:
    value = properties.get(member)
    if isinstance(value, dict) and isinstance(value.get("resourceRef"), str):
        return str(value["resourceRef"]).lower()
    return None


def entities_of(kind: str, document: Json | None) -> list[Entity]:
    """The entities of one aggregate document of ``kind`` (none for a deletion or a kind the
    compiler does not use)."""
    if document is None:
        return []
    if kind == "agentProviderAddress":
        return [ProviderAddress(str(document["server"]).lower(), str(document["address"]))]
    return list(_entities(document.get("rows", [])))


def _entities(rows: list[Json]) -> Iterator[Entity]:
    for row in rows:
        key = str(row["ref"]).lower()
        props: Json = row["properties"]
        row_kind = row["kind"]
        if row_kind == "servers":
            yield Server(key, row["id"])
        elif row_kind == "virtualNetworks":
            yield VirtualNetwork(key, row["id"])
        elif row_kind == "virtualNetworks/subnets":
            yield _subnet(key, row)
        elif row_kind == "networkInterfaces":
            yield _nic(key, row["id"], props)
        elif row_kind == "networkInterfaces/ipConfigurations":
            nic_key = key.rsplit("/ipconfigurations/", 1)[0]
            yield IpConfig(
                key,
                row["id"],
                nic_key,
                props.get("privateIPAddress"),
                _ref(props, "subnet"),
                _ref(props, "accessControlList"),
            )
        elif row_kind == "accessControlLists":
            yield _acl(key, row, [r for r in rows if r["kind"] == "accessControlLists/aclRules"])
        elif row_kind == "routeTables":
            routes = tuple(r["properties"] for r in rows if r["kind"] == "routeTables/routes")
            yield RouteTable(key, row["id"], routes)
        elif row_kind == "virtualNetworkManager":
            yield Fabric(key, str(props.get("networkVirtualizationProtocol", "Vxlan")))


def _subnet(key: str, row: Json) -> Subnet:
    props: Json = row["properties"]
    network = ipaddress.ip_network(str(props["addressPrefix"]))
    return Subnet(
        key,
        row["id"],
        key.rsplit("/subnets/", 1)[0],
        str(network),
        row.get("vsid"),
        _ref(props, "accessControlList"),
        _ref(props, "routeTable"),
        str(network.network_address + 1),
        network.prefixlen,
    )


def _nic(key: str, instance_id: str, props: Json) -> Nic:
    qos = (props.get("portSettings") or {}).get("qosSettings") or {}
    return Nic(
        key,
        instance_id,
        _ref(props, "server"),
        props.get("privateMacAddress"),
        qos.get("inboundMaximumMbps") or None,
        qos.get("outboundMaximumMbps") or None,
    )


def _acl(key: str, row: Json, rule_rows: list[Json]) -> Acl:
    props: Json = row["properties"]
    rules = sorted(
        ({"id": r["id"], **r["properties"]} for r in rule_rows),
        key=lambda rule: (rule["type"], rule["priority"]),
    )
    return Acl(
        key,
        row["id"],
        str(props.get("inboundDefaultAction", "Permit")),
        str(props.get("outboundDefaultAction", "Permit")),
        tuple(rules),
    )
