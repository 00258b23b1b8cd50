"""The compiler's input: the parts of the northbound model that shape host policy.

Every committed write of an aggregate (a virtual network with its subnets, a NIC with its
ipConfigurations, an ACL with its rules, ...) arrives as a *document*: the rows of the
aggregate in canonical NBI JSON. ``entities_of`` turns one document into typed, immutable
entities. Entities refer to each other by lower-cased resourceRef (``key``), the way the NBI
documents do; southbound objects are named by instanceId.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
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


# The kind of the documents an agent's reported provider address arrives in (not an NBI kind).
PROVIDER_ADDRESS_KIND = "agentProviderAddress"

# How rows of the aggregate (the row, and all rows of its aggregate) become entities.
Source = Callable[[str, Json, list[Json]], Iterator[Entity]]


def entities_of(kind: str, document: Json | None) -> list[Entity]:
    """The entities of one aggregate document of ``kind`` (none for a deletion or a kind the
    compiler does not use)."""
    if document is None:
        return []
    if kind == PROVIDER_ADDRESS_KIND:
        return [ProviderAddress(str(document["server"]).lower(), str(document["address"]))]
    rows: list[Json] = document.get("rows", [])
    return [
        entity
        for row in rows
        if (source := SOURCES.get(row["kind"])) is not None
        for entity in source(str(row["ref"]).lower(), row, rows)
    ]


def _server(key: str, row: Json, _rows: list[Json]) -> Iterator[Entity]:
    yield Server(key, row["id"])


def _virtual_network(key: str, row: Json, _rows: list[Json]) -> Iterator[Entity]:
    yield VirtualNetwork(key, row["id"])


def _ip_configuration(key: str, row: Json, _rows: list[Json]) -> Iterator[Entity]:
    props: Json = row["properties"]
    yield IpConfig(
        key,
        row["id"],
        key.rsplit("/ipconfigurations/", 1)[0],
        props.get("privateIPAddress"),
        _ref(props, "subnet"),
        _ref(props, "accessControlList"),
    )


def _access_control_list(key: str, row: Json, rows: list[Json]) -> Iterator[Entity]:
    yield _acl(key, row, [r for r in rows if r["kind"] == "accessControlLists/aclRules"])


def _route_table(key: str, row: Json, rows: list[Json]) -> Iterator[Entity]:
    routes = tuple(r["properties"] for r in rows if r["kind"] == "routeTables/routes")
    yield RouteTable(key, row["id"], routes)


def _fabric(key: str, row: Json, _rows: list[Json]) -> Iterator[Entity]:
    props: Json = row["properties"]
    yield Fabric(key, str(props.get("networkVirtualizationProtocol", "Vxlan")))


def _subnet(key: str, row: Json, _rows: list[Json]) -> Iterator[Entity]:
    props: Json = row["properties"]
    network = ipaddress.ip_network(str(props["addressPrefix"]))
    yield Subnet(
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


def _nic(key: str, row: Json, _rows: list[Json]) -> Iterator[Entity]:
    props: Json = row["properties"]
    qos = (props.get("portSettings") or {}).get("qosSettings") or {}
    yield Nic(
        key,
        row["id"],
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


# Every NBI kind (of an aggregate's rows) the compiler reads, and how. The change follower
# loads the aggregates of exactly these kinds' top-level kinds (``SOURCE_ROOTS``), so a kind
# read here cannot be missing from what a starting replica loads.
SOURCES: dict[str, Source] = {
    "servers": _server,
    "virtualNetworks": _virtual_network,
    "virtualNetworks/subnets": _subnet,
    "networkInterfaces": _nic,
    "networkInterfaces/ipConfigurations": _ip_configuration,
    "accessControlLists": _access_control_list,
    "routeTables": _route_table,
    "virtualNetworkManager": _fabric,
}
SOURCE_ROOTS: tuple[str, ...] = tuple(dict.fromkeys(kind.split("/")[0] for kind in SOURCES))
