"""The compiler's input: the parts of the northbound model that shape host policy.

Every committed write of an aggregate (a virtual network with its subnets, a NIC with its
ipConfigurations, an ACL with its rules, ...) arrives as a *document*: the rows of the
aggregate in canonical NBI JSON, or only those the write changed (a patch,
``controller.policy.documents``). ``entities_of`` turns rows into typed, immutable entities,
each row on its own (``SOURCES``) but for the few kinds read with their siblings
(``AGGREGATE_SOURCES``); an entity's key is its row's lower-cased resourceRef. Entities refer
to each other by that key, the way the NBI documents do; southbound objects are named by
instanceId.
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
    # Load balancing: keys of the backend pools it is a DIP of, of the inbound NAT rules that
    # forward to it, and of its 1:1 public IP.
    pools: tuple[str, ...] = ()
    nat_rules: tuple[str, ...] = ()
    public_ip: str | None = None


@dataclass(frozen=True)
class Acl:
    key: str
    id: str
    inbound_default: str
    outbound_default: str


@dataclass(frozen=True)
class AclRule:
    """One rule of an ACL, an entity of its own: a write of one rule of a 10,000-rule list
    changes this entity alone, so the compiler recomputes that rule's object, not the list's
    10,000 (75 ms on the event loop for a list in use)."""

    key: str
    id: str
    acl: str  # key of the ACL
    properties: Json


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


@dataclass(frozen=True)
class Frontend:
    """A VIP of a load balancer: its own private address, or that of ``public_ip``."""

    key: str
    id: str
    ip: str | None
    subnet: str | None  # key of its subnet (a virtual subnet: an internal VIP)
    public_ip: str | None  # key of the public IP


@dataclass(frozen=True)
class LbRule:
    """A load-balancing rule (``kind`` "rule"), an inbound NAT rule ("nat") or an outbound NAT
    rule ("outbound"): each names frontends, and a pool (not a NAT rule) or a probe (a
    load-balancing rule only)."""

    key: str
    id: str
    kind: str
    frontends: tuple[str, ...]
    pool: str | None
    probe: str | None
    protocol: str
    frontend_port: int | None
    backend_port: int | None
    distribution: str | None
    floating_ip: bool
    idle_timeout: int | None


@dataclass(frozen=True)
class Probe:
    key: str
    id: str
    protocol: str
    port: int
    request_path: str | None
    interval: int
    count: int


@dataclass(frozen=True)
class PublicIp:
    key: str
    id: str
    ip: str | None
    idle_timeout: int


@dataclass(frozen=True)
class Mux:
    key: str
    id: str
    server: str | None  # key of the server it runs on


@dataclass(frozen=True)
class DipHealth:
    """What a host reported of one DIP (ipConfiguration instanceId) under one probe
    (instanceId); ``server`` is the key of the reporting server."""

    key: str
    probe: str
    dip: str
    server: str
    state: str


LB_ENTITIES = (Frontend, LbRule, Probe, PublicIp, Mux, DipHealth)

Entity = (
    Server
    | VirtualNetwork
    | Subnet
    | Nic
    | IpConfig
    | Acl
    | AclRule
    | RouteTable
    | Fabric
    | ProviderAddress
    | Frontend
    | LbRule
    | Probe
    | PublicIp
    | Mux
    | DipHealth
)


def _ref(properties: Mapping[str, Any], member: str) -> str | None:
    value = properties.get(member)
    if isinstance(value, dict) and isinstance(value.get("resourceRef"), str):
        return str(value["resourceRef"]).lower()
    return None


def _refs(properties: Mapping[str, Any], member: str) -> tuple[str, ...]:
    """The keys a list of references names, in order, each once."""
    found = [
        str(item["resourceRef"]).lower()
        for item in properties.get(member) or ()
        if isinstance(item, dict) and isinstance(item.get("resourceRef"), str)
    ]
    return tuple(dict.fromkeys(found))


# The kind of the documents an agent's reported provider address arrives in (not an NBI kind).
PROVIDER_ADDRESS_KIND = "agentProviderAddress"
# The kind of the documents a DIP's health, as its host reported it, arrives in.
DIP_HEALTH_KIND = "agentDipHealth"

# How one row of an aggregate (its key and the row) becomes entities.
Source = Callable[[str, Json], Iterator[Entity]]
# How a row that needs its siblings (the row, and all rows of its aggregate) becomes entities.
AggregateSource = Callable[[str, Json, list[Json]], Iterator[Entity]]


def entities_of(kind: str, document: Json | None) -> list[Entity]:
    """The entities of one aggregate document of ``kind`` (none for a deletion or a kind the
    compiler does not use)."""
    if document is None:
        return []
    if kind == PROVIDER_ADDRESS_KIND:
        return [ProviderAddress(str(document["server"]).lower(), str(document["address"]))]
    if kind == DIP_HEALTH_KIND:
        # A DIP is Up until reported Down: only Down is a fact the compiler keeps (an Up
        # report removes it), so a DIP never reported and one reported Up are the same.
        if document["state"] != "Down":
            return []
        probe, dip = str(document["probe"]), str(document["dip"])
        server = str(document["server"]).lower()
        return [DipHealth(f"{probe}/{dip}", probe, dip, server, "Down")]
    rows: list[Json] = document.get("rows", [])
    entities: list[Entity] = []
    for row in rows:
        kind = row["kind"]
        if (source := SOURCES.get(kind)) is not None:
            entities += source(str(row["ref"]).lower(), row)
        elif (whole := AGGREGATE_SOURCES.get(kind)) is not None:
            entities += whole(str(row["ref"]).lower(), row, rows)
    return entities


def patchable(root_kind: str) -> bool:
    """Whether a write of an aggregate of ``root_kind`` may be recorded as what it changed
    (``controller.policy.documents.patch_document``): none of its rows' entities reads
    another row."""
    return root_kind not in _WHOLE_ROOTS


def _server(key: str, row: Json) -> Iterator[Entity]:
    yield Server(key, row["id"])


def _virtual_network(key: str, row: Json) -> Iterator[Entity]:
    yield VirtualNetwork(key, row["id"])


def _ip_configuration(key: str, row: Json) -> Iterator[Entity]:
    props: Json = row["properties"]
    yield IpConfig(
        key,
        row["id"],
        key.rsplit("/ipconfigurations/", 1)[0],
        props.get("privateIPAddress"),
        _ref(props, "subnet"),
        _ref(props, "accessControlList"),
        _refs(props, "loadBalancerBackendAddressPools"),
        _refs(props, "loadBalancerInboundNatRules"),
        _ref(props, "publicIPAddress"),
    )


def _access_control_list(key: str, row: Json) -> Iterator[Entity]:
    props: Json = row["properties"]
    yield Acl(
        key,
        row["id"],
        str(props.get("inboundDefaultAction", "Permit")),
        str(props.get("outboundDefaultAction", "Permit")),
    )


def _acl_rule(key: str, row: Json) -> Iterator[Entity]:
    yield AclRule(key, row["id"], key.rsplit("/aclrules/", 1)[0], row["properties"])


def _route_table(key: str, row: Json, rows: list[Json]) -> Iterator[Entity]:
    routes = tuple(r["properties"] for r in rows if r["kind"] == "routeTables/routes")
    yield RouteTable(key, row["id"], routes)


def _fabric(key: str, row: Json) -> Iterator[Entity]:
    props: Json = row["properties"]
    yield Fabric(key, str(props.get("networkVirtualizationProtocol", "Vxlan")))


def _subnet(key: str, row: Json) -> Iterator[Entity]:
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


def _nic(key: str, row: Json) -> Iterator[Entity]:
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


def _frontend(key: str, row: Json) -> Iterator[Entity]:
    props: Json = row["properties"]
    yield Frontend(
        key,
        row["id"],
        props.get("privateIPAddress"),
        _ref(props, "subnet"),
        _ref(props, "publicIPAddress"),
    )


def _lb_rule(kind: str) -> Source:
    def source(key: str, row: Json) -> Iterator[Entity]:
        props: Json = row["properties"]
        yield LbRule(
            key,
            row["id"],
            kind,
            _refs(props, "frontendIPConfigurations"),
            _ref(props, "backendAddressPool"),
            _ref(props, "probe"),
            str(props.get("protocol", "All")),
            props.get("frontendPort"),
            props.get("backendPort"),
            props.get("loadDistribution"),
            bool(props.get("enableFloatingIP", False)),
            props.get("idleTimeoutInMinutes"),
        )

    return source


def _probe(key: str, row: Json) -> Iterator[Entity]:
    props: Json = row["properties"]
    yield Probe(
        key,
        row["id"],
        str(props.get("protocol", "Tcp")),
        int(props.get("port", 0)),
        props.get("requestPath"),
        int(props.get("intervalInSeconds", 15)),
        int(props.get("numberOfProbes", 2)),
    )


def _public_ip(key: str, row: Json) -> Iterator[Entity]:
    props: Json = row["properties"]
    yield PublicIp(
        key, row["id"], props.get("ipAddress"), int(props.get("idleTimeoutInMinutes", 4))
    )


def _mux(key: str, row: Json) -> Iterator[Entity]:
    yield Mux(key, row["id"], _ref(row["properties"], "server"))


# Every NBI kind (of an aggregate's rows) the compiler reads, and how: from the row alone, or
# (``AGGREGATE_SOURCES``) with its siblings. The change follower loads the aggregates of
# exactly these kinds' top-level kinds (``SOURCE_ROOTS``), so a kind read here cannot be
# missing from what a starting replica loads; a write of an aggregate whose kind is read with
# its siblings is recorded whole, any other as what it changed.
SOURCES: dict[str, Source] = {
    "servers": _server,
    "virtualNetworks": _virtual_network,
    "virtualNetworks/subnets": _subnet,
    "networkInterfaces": _nic,
    "networkInterfaces/ipConfigurations": _ip_configuration,
    "accessControlLists": _access_control_list,
    "accessControlLists/aclRules": _acl_rule,
    "virtualNetworkManager": _fabric,
    "loadBalancers/frontendIPConfigurations": _frontend,
    "loadBalancers/loadBalancingRules": _lb_rule("rule"),
    "loadBalancers/inboundNatRules": _lb_rule("nat"),
    "loadBalancers/outboundNatRules": _lb_rule("outbound"),
    "loadBalancers/probes": _probe,
    "publicIPAddresses": _public_ip,
    "loadBalancerMuxes": _mux,
}
AGGREGATE_SOURCES: dict[str, AggregateSource] = {
    "routeTables": _route_table,  # one entity, with every route of the table
}
SOURCE_ROOTS: tuple[str, ...] = tuple(
    dict.fromkeys(kind.split("/")[0] for kind in [*SOURCES, *AGGREGATE_SOURCES])
)
_WHOLE_ROOTS = frozenset(kind.split("/")[0] for kind in AGGREGATE_SOURCES)
