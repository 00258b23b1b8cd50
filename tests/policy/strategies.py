"""Hypothesis strategies for the policy compiler: random valid northbound topologies and random
sequences of northbound writes, as the documents the service records in its change log.

``World`` plays the NBI and the store. It takes whole-aggregate writes (``ServerWrite``,
``AclWrite``, ``VnetWrite``, ``NicWrite``, ...), gives instanceIds (GUIDs, kept while a
resource exists, new when it is created again), VSIDs (unique, the lowest free one, given again
once the subnet is gone) and MACs, checks what the NBI checks (references name existing
resources; an ACL, route table, subnet, virtual network or server in use cannot be deleted; a
NIC's ipConfigurations share one virtual network unless it is a multitenant stack; an address
is held once per subnet) and answers each write with the ``Change`` the change log records: the
aggregate's rows after the write, shaped as ``controller.service.changes.document`` shapes them
(instanceId, kind key, parent instanceId, resourceRef, canonical properties, the VSID of each
virtual subnet), or None for the deletion of a root. Provider addresses arrive as
``agentProviderAddress`` changes, as the southbound runtime records an agent's report.
``World.documents()`` is what a replica loading at the current revision reads (every policy
aggregate and every provider address of an existing server, as the follower's load does).

Deleting a server drops the provider address its agent reported without a change of its own:
the store deletes the agent's row with the server (ON DELETE CASCADE).

The generated clients (``OPERATIONS``) only make writes the NBI accepts: create, replace or
delete any aggregate, move a NIC to another server or unbind it, re-address an
ipConfiguration, add or remove ipConfigurations, subnets, ACL rules and routes, attach and
detach ACLs and route tables, change QoS, flip the encapsulation, report provider addresses,
re-PUT a resource unchanged, and write kinds the compiler does not read. Load balancing too:
load balancers (public, public-IP and internal frontends, pools, probes, load-balancing,
inbound and outbound NAT rules) created, edited and deleted, public IPs, muxes placed on
servers, ipConfigurations joining and leaving pools, NAT rules and public IPs, and agents'
reports of DIP health (``agentDipHealth`` changes, as the southbound records them). A report
goes with its DIP, its probe and its reporting server, as the store's ON DELETE CASCADE
takes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st

from controller.policy import Change
from controller.policy.documents import (
    DIP_HEALTH_KIND,
    DocumentRow,
    aggregate_document,
    dip_health_document,
    dip_health_root,
)

Json = dict[str, Any]
Draw = st.DrawFn

# Few resourceIds, so deleted resources come back under the same resourceRef (with new
# instanceIds), as scripts that tear down and rebuild a tenant do. Servers are named by GUID,
# as SDN Express names them; the casing is kept as written, and compared case-insensitively.
SERVER_IDS = (
    "3D2E1F0A-9B8C-4D7E-A6F5-E4D3C2B1A098",
    "8F0C6B1E-52A7-4E39-9D84-1B6E2F7A3C05",
    "C41D9A3B-7E26-4F18-B05C-93A8D2E61F47",
    "5A7E3C92-1D48-4B6F-8A20-E7C5B9D3F164",
)
ACL_IDS = ("Fabrikam-Web", "Fabrikam-App", "Contoso-DB")
TABLE_IDS = ("NVA-Routes", "Egress")
VNET_IDS = ("Fabrikam_VNet1", "Contoso_VNet1", "Woodgrove-VNet")
SUBNET_IDS = ("Web", "App", "DB", "Mgmt")
NIC_IDS = ("WebVM1_Nic1", "WebVM2_Nic1", "AppVM1_Nic1", "DbVM1_Nic1", "ContainerHost1_Nic1")
CONFIG_IDS = ("IpConfig1", "IpConfig2", "IpConfig3")
RULE_IDS = ("AllowWeb", "AllowRDP", "DenyAll", "AllowDNS")
ROUTE_IDS = ("ToNVA", "Default", "OnPrem")
PROVIDER_ADDRESSES = ("10.10.56.11", "10.10.56.12", "10.10.56.13", "10.10.56.14")
LB_IDS = ("Web-LB", "Internal-LB")
PUBLIC_IP_IDS = ("PIP1", "PIP2")
MUX_IDS = ("Mux1", "Mux2")
VIP_SUBNET = "/logicalNetworks/PublicVIP/subnets/VIP"
VIPS = ("41.40.40.8", "41.40.40.9", "41.40.40.10", "41.40.40.11")
PUBLIC_ADDRESSES = ("41.40.40.20", "41.40.40.21", "41.40.40.22")

HNVPA = "/logicalNetworks/HNVPA"
HNVPA_SUBNET = f"{HNVPA}/subnets/PA"
VLAN = "/logicalNetworks/Tenant-VLAN200"
VLAN_SUBNET = f"{VLAN}/subnets/VLAN200"
HOST_CREDENTIAL = "/credentials/NCHostCert"
FABRIC = "/virtualNetworkManager/configuration"
SWITCH = "/virtualSwitchManager/configuration"
ADDRESS_SPACE = "192.168.0.0/16"
VSID_MIN = 4096
MAX_SUBNET_SLOTS = 128
QOS_CHOICES: tuple[Json | None, ...] = (
    None,
    {},
    {"inboundMaximumMbps": 0},
    {"outboundMaximumMbps": 1000, "outboundReservedValue": 100},
    {"inboundMaximumMbps": 500, "outboundMaximumMbps": 500},
)
_NAMESPACE = uuid.UUID("0b5e8c1e-2f4a-4c55-9f31-6a3d1e7b9c20")


def ref(kind: str, resource_id: str) -> str:
    return f"/{kind}/{resource_id}"


def subnet_ref(vnet: str, subnet: str) -> str:
    return f"/virtualNetworks/{vnet}/subnets/{subnet}"


def provider_address_root(server_instance_id: str) -> str:
    """The aggregate id the southbound runtime records a server's provider address under."""
    return str(uuid.uuid5(uuid.UUID(server_instance_id), "provider-address"))


# -- what clients write -------------------------------------------------------------------


@dataclass(frozen=True)
class ServerWrite:
    rid: str
    management: str = "host.contoso.com"
    bmc: bool = False  # with a BMC networkInterface child (the compiler does not read it)


@dataclass(frozen=True)
class AclWrite:
    rid: str
    inbound: str = "Permit"
    outbound: str = "Permit"
    rules: tuple[tuple[str, Json], ...] = ()  # (resourceId, canonical properties)


@dataclass(frozen=True)
class TableWrite:
    rid: str
    routes: tuple[tuple[str, Json], ...] = ()


@dataclass(frozen=True)
class SubnetWrite:
    rid: str
    slot: int  # 192.168.<2*slot>.0/<length>
    length: int = 24
    acl: str | None = None  # ACL resourceId
    table: str | None = None  # route table resourceId

    @property
    def prefix(self) -> str:
        return f"192.168.{2 * self.slot}.0/{self.length}"


@dataclass(frozen=True)
class VnetWrite:
    rid: str
    subnets: tuple[SubnetWrite, ...] = ()


@dataclass(frozen=True)
class ConfigWrite:
    rid: str
    subnet: str  # resourceRef of a virtual or a logical subnet
    ip: str
    static: bool = False
    acl: str | None = None
    pools: tuple[str, ...] = ()  # backend pool resourceRefs
    nat: str | None = None  # inbound NAT rule resourceRef
    public_ip: str | None = None  # public IP resourceId


@dataclass(frozen=True)
class FrontendWrite:
    rid: str
    ip: str | None = None  # in the VIP subnet, or in ``subnet`` (internal)
    subnet: str | None = None  # a virtual subnet ref: an internal VIP
    public_ip: str | None = None  # public IP resourceId (then no ip)


@dataclass(frozen=True)
class LbRuleWrite:
    rid: str
    kind: str  # "loadBalancingRules", "inboundNatRules", "outboundNatRules"
    frontend: str  # frontend resourceId
    pool: str | None = None  # pool resourceId (not for NAT rules)
    probe: str | None = None  # probe resourceId (load-balancing rules only)
    port: int = 80
    distribution: str = "Default"


@dataclass(frozen=True)
class LbWrite:
    rid: str
    frontends: tuple[FrontendWrite, ...] = ()
    pools: tuple[str, ...] = ()
    probes: tuple[tuple[str, int], ...] = ()  # (resourceId, port)
    rules: tuple[LbRuleWrite, ...] = ()

    def path(self, collection: str, child: str) -> str:
        return f"/loadBalancers/{self.rid}/{collection}/{child}"


@dataclass(frozen=True)
class NicWrite:
    rid: str
    server: str | None = None  # server resourceId
    multitenant: bool = False
    qos: Json | None = None
    configs: tuple[ConfigWrite, ...] = ()


def vnet_of(subnet: str) -> str | None:
    """The virtual network resourceId of a subnet ref (None for a logical subnet)."""
    parts = subnet.split("/")
    return parts[2] if parts[1] == "virtualNetworks" else None


# -- the NBI and the store ----------------------------------------------------------------


class World:
    def __init__(self) -> None:
        self.revision = 0
        self._serial = 0
        self._ids: dict[str, str] = {}  # resourceRef -> instanceId of every existing resource
        self._children: dict[str, set[str]] = {}  # root ref -> refs of its descendants
        self._vsids: dict[str, int] = {}  # virtual subnet ref -> VSID
        self._macs: dict[str, str] = {}  # NIC ref -> MAC
        self._held: dict[tuple[str, str], str] = {}  # (subnet ref, address) -> NIC resourceId
        self._mac_serial = 0
        self.servers: dict[str, ServerWrite] = {}
        self.addresses: dict[str, str] = {}  # server resourceId -> provider address
        self.acls: dict[str, AclWrite] = {}
        self.tables: dict[str, TableWrite] = {}
        self.vnets: dict[str, VnetWrite] = {}
        self.nics: dict[str, NicWrite] = {}
        self.encapsulation: str | None = None  # None until the singleton is first written
        self.hosts_seen: list[str] = []  # instanceId of every server ever created
        self.lbs: dict[str, LbWrite] = {}
        self.public_ips: dict[str, str] = {}  # resourceId -> address
        self.muxes: dict[str, str | None] = {}  # resourceId -> server resourceId
        # (probe ref, ipConfiguration ref) -> (reporting server resourceId, state)
        self.health: dict[tuple[str, str], tuple[str, str]] = {}
        self.vlan_dns = False
        # Written before the history starts: the provider and the VLAN logical networks.
        for path in (HNVPA, HNVPA_SUBNET, VLAN, VLAN_SUBNET, f"{VLAN_SUBNET}/ipPools/Pool1"):
            self._ids[path] = self._guid()
        self._ids[FABRIC] = self._guid()
        self._ids[SWITCH] = self._guid()

    def _guid(self) -> str:
        self._serial += 1
        return str(uuid.uuid5(_NAMESPACE, str(self._serial)))

    def _change(self, root: str, kind: str, document: Json | None) -> Change:
        self.revision += 1
        return Change(self.revision, root, kind, document)

    def instance_id(self, path: str) -> str:
        return self._ids[path]

    # -- writes ---------------------------------------------------------------------------

    def put_server(self, write: ServerWrite) -> Change:
        path = ref("servers", write.rid)
        created = path not in self._ids
        self._place(path, [f"{path}/networkInterfaces/BMC"] if write.bmc else [])
        if created:
            self.hosts_seen.append(self._ids[path])
        self.servers[write.rid] = write
        return self._change(self._ids[path], "servers", self._server_document(write))

    def delete_server(self, rid: str) -> Change:
        assert not any(n.server == rid for n in self.nics.values()), "server in use"
        assert rid not in self.muxes.values(), "server of a mux"
        del self.servers[rid]
        self.addresses.pop(rid, None)  # the agent's row goes with the server
        self.health = {k: v for k, v in self.health.items() if v[0] != rid}  # and its reports
        return self._delete(ref("servers", rid), "servers")

    def report_address(self, rid: str, address: str) -> Change:
        assert rid in self.servers
        self.addresses[rid] = address
        server = self._ids[ref("servers", rid)]
        return self._change(
            provider_address_root(server),
            "agentProviderAddress",
            {"server": ref("servers", rid), "address": address},
        )

    def put_acl(self, write: AclWrite) -> Change:
        path = ref("accessControlLists", write.rid)
        self._place(path, [f"{path}/aclRules/{rule}" for rule, _ in write.rules])
        self.acls[write.rid] = write
        return self._change(self._ids[path], "accessControlLists", self._acl_document(write))

    def delete_acl(self, rid: str) -> Change:
        assert not self.acl_in_use(rid), "ACL in use"
        del self.acls[rid]
        return self._delete(ref("accessControlLists", rid), "accessControlLists")

    def put_table(self, write: TableWrite) -> Change:
        path = ref("routeTables", write.rid)
        self._place(path, [f"{path}/routes/{route}" for route, _ in write.routes])
        self.tables[write.rid] = write
        return self._change(self._ids[path], "routeTables", self._table_document(write))

    def delete_table(self, rid: str) -> Change:
        assert not self.table_in_use(rid), "route table in use"
        del self.tables[rid]
        return self._delete(ref("routeTables", rid), "routeTables")

    def put_vnet(self, write: VnetWrite) -> Change:
        path = ref("virtualNetworks", write.rid)
        kept = {subnet_ref(write.rid, s.rid) for s in write.subnets}
        old = self.vnets.get(write.rid)
        for gone in old.subnets if old else ():
            assert subnet_ref(write.rid, gone.rid) in kept or not self.subnet_in_use(
                subnet_ref(write.rid, gone.rid)
            ), "subnet in use"
        for written in write.subnets:
            assert written.acl is None or written.acl in self.acls
            assert written.table is None or written.table in self.tables
        assert len({s.slot for s in write.subnets}) == len(write.subnets), "subnets overlap"
        self._place(path, sorted(kept))
        for subnet in sorted(kept - set(self._vsids)):
            self._vsids[subnet] = self._free_vsid()
        self.vnets[write.rid] = write
        return self._change(self._ids[path], "virtualNetworks", self._vnet_document(write))

    def delete_vnet(self, rid: str) -> Change:
        assert not any(self.subnet_in_use(subnet_ref(rid, s.rid)) for s in self.vnets[rid].subnets)
        del self.vnets[rid]
        return self._delete(ref("virtualNetworks", rid), "virtualNetworks")

    def put_nic(self, write: NicWrite) -> Change:
        path = ref("networkInterfaces", write.rid)
        assert write.server is None or write.server in self.servers
        networks = {vnet_of(c.subnet) for c in write.configs} - {None}
        assert write.multitenant or len(networks) <= 1, "ipConfigurations in several networks"
        slots = [(c.subnet, c.ip) for c in write.configs]
        assert len(set(slots)) == len(slots), "an address asked for twice"
        assert all(self._held.get(slot, write.rid) == write.rid for slot in slots), "in use"
        for config in write.configs:
            assert config.subnet == VLAN_SUBNET or config.subnet in self._vsids
            assert config.acl is None or config.acl in self.acls
        self._place(path, [f"{path}/ipConfigurations/{c.rid}" for c in write.configs])
        if path not in self._macs:
            self._mac_serial += 1
            self._macs[path] = f"001DD8B7{self._mac_serial:04X}"
        self._release(write.rid)
        self._held |= dict.fromkeys(slots, write.rid)
        self.nics[write.rid] = write
        return self._change(self._ids[path], "networkInterfaces", self._nic_document(write))

    def delete_nic(self, rid: str) -> Change:
        self._release(rid)
        del self.nics[rid]
        self._macs.pop(ref("networkInterfaces", rid))
        return self._delete(ref("networkInterfaces", rid), "networkInterfaces")

    def put_lb(self, write: LbWrite) -> Change:
        path = ref("loadBalancers", write.rid)
        children = [write.path("frontendIPConfigurations", f.rid) for f in write.frontends]
        children += [write.path("backendAddressPools", p) for p in write.pools]
        children += [write.path("probes", p) for p, _ in write.probes]
        children += [write.path(r.kind, r.rid) for r in write.rules]
        for gone in set(self._children.get(path, set())) - set(children):
            assert not self.lb_child_in_use(gone), f"{gone} in use"
        for frontend in write.frontends:
            assert frontend.public_ip is None or frontend.public_ip in self.public_ips
            assert frontend.subnet is None or frontend.subnet in self._vsids
        self._place(path, children)
        self.lbs[write.rid] = write
        return self._change(self._ids[path], "loadBalancers", self._lb_document(write))

    def delete_lb(self, rid: str) -> Change:
        path = ref("loadBalancers", rid)
        assert not any(self.lb_child_in_use(c) for c in self._children[path])
        del self.lbs[rid]
        return self._delete(path, "loadBalancers")

    def put_public_ip(self, rid: str, address: str) -> Change:
        path = ref("publicIPAddresses", rid)
        self._place(path, [])
        self.public_ips[rid] = address
        document = self._public_ip_document(rid)
        return self._change(self._ids[path], "publicIPAddresses", document)

    def _public_ip_document(self, rid: str) -> Json:
        properties = {
            "ipAddress": self.public_ips[rid],
            "publicIPAllocationMethod": "Static",
            "idleTimeoutInMinutes": 4,
            "publicIPAddressVersion": "IPv4",
        }
        path = ref("publicIPAddresses", rid)
        return {"rows": [self._row(path, "publicIPAddresses", properties)]}

    def delete_public_ip(self, rid: str) -> Change:
        assert not self.public_ip_in_use(rid)
        del self.public_ips[rid]
        return self._delete(ref("publicIPAddresses", rid), "publicIPAddresses")

    def put_mux(self, rid: str, server: str | None) -> Change:
        assert server is None or server in self.servers
        path = ref("loadBalancerMuxes", rid)
        self._place(path, [])
        self.muxes[rid] = server
        return self._change(self._ids[path], "loadBalancerMuxes", self._mux_document(rid))

    def delete_mux(self, rid: str) -> Change:
        del self.muxes[rid]
        return self._delete(ref("loadBalancerMuxes", rid), "loadBalancerMuxes")

    def report_health(self, server: str, probe: str, config: str, state: str) -> Change:
        """An agent's report of a DIP's state under a probe, as the southbound records it."""
        assert server in self.servers
        assert probe in self._ids
        assert config in self._ids
        self.health[(probe, config)] = (server, state)
        return self._change(*self._health_change(probe, config))

    def _health_change(self, probe: str, config: str) -> tuple[str, str, Json]:
        server, state = self.health[(probe, config)]
        probe_id, config_id = uuid.UUID(self._ids[probe]), uuid.UUID(self._ids[config])
        document = dip_health_document(ref("servers", server), probe_id, config_id, state)
        return str(dip_health_root(config_id, probe_id)), DIP_HEALTH_KIND, document

    def put_fabric(self, encapsulation: str) -> Change:
        self.encapsulation = encapsulation
        return self._change(self._ids[FABRIC], "virtualNetworkManager", self._fabric_document())

    def put_vlan(self, dns: bool) -> Change:
        """Re-PUT the VLAN logical network (a kind the compiler does not read)."""
        self.vlan_dns = dns
        rows = [
            self._row(VLAN, "logicalNetworks", {"networkVirtualizationEnabled": False}),
            self._row(
                VLAN_SUBNET,
                "logicalNetworks/subnets",
                {
                    "addressPrefix": "172.16.200.0/24",
                    "vlanID": 200,
                    "defaultGateways": ["172.16.200.1"],
                    "dnsServers": ["172.16.200.2"] if dns else [],
                    "isPublic": False,
                    "routes": [],
                },
            ),
            self._row(
                f"{VLAN_SUBNET}/ipPools/Pool1",
                "logicalNetworks/subnets/ipPools",
                {"startIpAddress": "172.16.200.10", "endIpAddress": "172.16.200.60"},
            ),
        ]
        return self._change(self._ids[VLAN], "logicalNetworks", {"rows": rows})

    def put_switch(self, limits: bool) -> Change:
        """PUT the virtualSwitchManager singleton (a kind the compiler does not read)."""
        row = self._row(
            SWITCH,
            "virtualSwitchManager",
            {"qosSettings": {"enableHardwareLimits": True} if limits else {}},
        )
        return self._change(self._ids[SWITCH], "virtualSwitchManager", {"rows": [row]})

    def _place(self, root: str, children: Iterable[str]) -> None:
        """Give instanceIds to the new resources of aggregate ``root``; forget the removed."""
        wanted = set(children)
        for gone in self._children.get(root, set()) - wanted:
            del self._ids[gone]
            self._vsids.pop(gone, None)
            # The store deletes the health reports of a DIP or probe with it.
            self.health = {k: v for k, v in self.health.items() if gone not in k}
        for path in [root, *sorted(wanted)]:
            if path not in self._ids:
                self._ids[path] = self._guid()
        self._children[root] = wanted

    def _delete(self, root: str, kind: str) -> Change:
        instance = self._ids[root]
        self._place(root, [])
        del self._ids[root], self._children[root]
        return self._change(instance, kind, None)

    def _release(self, nic: str) -> None:
        for config in self.nics[nic].configs if nic in self.nics else ():
            del self._held[(config.subnet, config.ip)]

    def _free_vsid(self) -> int:
        held = set(self._vsids.values())
        vsid = VSID_MIN
        while vsid in held:
            vsid += 1
        return vsid

    # -- documents ------------------------------------------------------------------------

    def _row(self, path: str, kind: str, properties: Json) -> Json:
        """One row of an aggregate's document, built as the controller builds it."""
        row = DocumentRow(uuid.UUID(self._ids[path]), kind, path, properties, self._vsids.get(path))
        rows: list[Json] = aggregate_document([row])["rows"]
        return rows[0]

    def _server_document(self, write: ServerWrite) -> Json:
        path = ref("servers", write.rid)
        connection = {
            "managementAddresses": [write.management],
            "credential": {"resourceRef": HOST_CREDENTIAL},
            "credentialType": "X509Certificate",
        }
        rows = [self._row(path, "servers", {"connections": [connection]})]
        if write.bmc:
            bmc = f"{path}/networkInterfaces/BMC"
            properties = {"isBMC": True, "logicalSubnets": [{"resourceRef": HNVPA_SUBNET}]}
            rows.append(self._row(bmc, "servers/networkInterfaces", properties))
        return {"rows": rows}

    def _acl_document(self, write: AclWrite) -> Json:
        path = ref("accessControlLists", write.rid)
        defaults = {"inboundDefaultAction": write.inbound, "outboundDefaultAction": write.outbound}
        rows = [self._row(path, "accessControlLists", defaults)]
        for rule, properties in write.rules:
            rule_path = f"{path}/aclRules/{rule}"
            rows.append(self._row(rule_path, "accessControlLists/aclRules", dict(properties)))
        return {"rows": rows}

    def _table_document(self, write: TableWrite) -> Json:
        path = ref("routeTables", write.rid)
        rows = [self._row(path, "routeTables", {})]
        for route, properties in write.routes:
            route_path = f"{path}/routes/{route}"
            rows.append(self._row(route_path, "routeTables/routes", dict(properties)))
        return {"rows": rows}

    def _vnet_document(self, write: VnetWrite) -> Json:
        path = ref("virtualNetworks", write.rid)
        properties: Json = {
            "addressSpace": {"addressPrefixes": [ADDRESS_SPACE]},
            "logicalNetwork": {"resourceRef": HNVPA},
        }
        rows = [self._row(path, "virtualNetworks", properties)]
        for subnet in write.subnets:
            members: Json = {"addressPrefix": subnet.prefix}
            if subnet.acl is not None:
                members["accessControlList"] = {
                    "resourceRef": ref("accessControlLists", subnet.acl)
                }
            if subnet.table is not None:
                members["routeTable"] = {"resourceRef": ref("routeTables", subnet.table)}
            subnet_path = subnet_ref(write.rid, subnet.rid)
            rows.append(self._row(subnet_path, "virtualNetworks/subnets", members))
        return {"rows": rows}

    def _nic_document(self, write: NicWrite) -> Json:
        path = ref("networkInterfaces", write.rid)
        properties: Json = {
            "privateMacAddress": self._macs[path],
            "privateMacAllocationMethod": "Dynamic",
        }
        if write.qos is not None:
            properties["portSettings"] = {"qosSettings": dict(write.qos)}
        properties |= {
            "isHostVirtualNetworkInterface": False,
            "isPrimary": True,
            "isMultitenantStack": write.multitenant,
        }
        if write.server is not None:
            properties["server"] = {"resourceRef": ref("servers", write.server)}
        rows = [self._row(path, "networkInterfaces", properties)]
        for config in write.configs:
            members: Json = {
                "privateIPAddress": config.ip,
                "privateIPAllocationMethod": "Static" if config.static else "Dynamic",
                "subnet": {"resourceRef": config.subnet},
            }
            if config.acl is not None:
                members["accessControlList"] = {
                    "resourceRef": ref("accessControlLists", config.acl)
                }
            members["loadBalancerBackendAddressPools"] = [{"resourceRef": p} for p in config.pools]
            members["loadBalancerInboundNatRules"] = (
                [{"resourceRef": config.nat}] if config.nat is not None else []
            )
            if config.public_ip is not None:
                members["publicIPAddress"] = {
                    "resourceRef": ref("publicIPAddresses", config.public_ip)
                }
            config_path = f"{path}/ipConfigurations/{config.rid}"
            rows.append(self._row(config_path, "networkInterfaces/ipConfigurations", members))
        return {"rows": rows}

    def _lb_document(self, write: LbWrite) -> Json:
        path = ref("loadBalancers", write.rid)
        rows = [self._row(path, "loadBalancers", {})]

        def child(collection: str, rid: str, properties: Json) -> None:
            kind = f"loadBalancers/{collection}"
            rows.append(self._row(write.path(collection, rid), kind, properties))

        for frontend in write.frontends:
            members: Json = {"privateIPAllocationMethod": "Static"}
            if frontend.public_ip is not None:
                members["publicIPAddress"] = {
                    "resourceRef": ref("publicIPAddresses", frontend.public_ip)
                }
            else:
                members["privateIPAddress"] = frontend.ip
                members["subnet"] = {"resourceRef": frontend.subnet or VIP_SUBNET}
            child("frontendIPConfigurations", frontend.rid, members)
        for pool in write.pools:
            child("backendAddressPools", pool, {})
        for probe, port in write.probes:
            probe_members = {
                "protocol": "Tcp",
                "port": port,
                "intervalInSeconds": 5,
                "numberOfProbes": 2,
            }
            child("probes", probe, probe_members)
        for rule in write.rules:
            members = {
                "protocol": "Tcp",
                "frontendIPConfigurations": [
                    {"resourceRef": write.path("frontendIPConfigurations", rule.frontend)}
                ],
                "idleTimeoutInMinutes": 4,
                "enableFloatingIP": False,
            }
            if rule.kind != "outboundNatRules":
                members |= {"frontendPort": rule.port, "backendPort": rule.port + 8000}
            if rule.pool is not None:
                members["backendAddressPool"] = {
                    "resourceRef": write.path("backendAddressPools", rule.pool)
                }
            if rule.probe is not None:
                members["probe"] = {"resourceRef": write.path("probes", rule.probe)}
            if rule.kind == "loadBalancingRules":
                members["loadDistribution"] = rule.distribution
            child(rule.kind, rule.rid, members)
        return {"rows": rows}

    def _mux_document(self, rid: str) -> Json:
        server = self.muxes[rid]
        properties: Json = (
            {} if server is None else {"server": {"resourceRef": ref("servers", server)}}
        )
        path = ref("loadBalancerMuxes", rid)
        return {"rows": [self._row(path, "loadBalancerMuxes", properties)]}

    def _fabric_document(self) -> Json:
        properties = {"networkVirtualizationProtocol": self.encapsulation}
        return {"rows": [self._row(FABRIC, "virtualNetworkManager", properties)]}

    def documents(self) -> list[Change]:
        """Every policy aggregate's current documents and every provider address, as changes
        at the current revision: what a replica loading now reads."""
        revision = self.revision

        def at(path: str, kind: str, document: Json) -> Change:
            return Change(revision, self._ids[path], kind, document)

        changes = [
            at(ref("servers", s.rid), "servers", self._server_document(s))
            for s in self.servers.values()
        ]
        changes += [
            at(ref("accessControlLists", a.rid), "accessControlLists", self._acl_document(a))
            for a in self.acls.values()
        ]
        changes += [
            at(ref("routeTables", t.rid), "routeTables", self._table_document(t))
            for t in self.tables.values()
        ]
        changes += [
            at(ref("virtualNetworks", v.rid), "virtualNetworks", self._vnet_document(v))
            for v in self.vnets.values()
        ]
        changes += [
            at(ref("networkInterfaces", n.rid), "networkInterfaces", self._nic_document(n))
            for n in self.nics.values()
        ]
        if self.encapsulation is not None:
            changes.append(at(FABRIC, "virtualNetworkManager", self._fabric_document()))
        changes += [
            at(ref("loadBalancers", lb.rid), "loadBalancers", self._lb_document(lb))
            for lb in self.lbs.values()
        ]
        changes += [
            at(ref("publicIPAddresses", rid), "publicIPAddresses", self._public_ip_document(rid))
            for rid in self.public_ips
        ]
        changes += [
            at(ref("loadBalancerMuxes", m), "loadBalancerMuxes", self._mux_document(m))
            for m in self.muxes
        ]
        changes += [Change(revision, *self._health_change(*key)) for key in self.health]
        changes += [
            Change(
                revision,
                provider_address_root(self._ids[ref("servers", server)]),
                "agentProviderAddress",
                {"server": ref("servers", server), "address": address},
            )
            for server, address in self.addresses.items()
        ]
        return changes

    # -- questions clients ask ------------------------------------------------------------

    def subnet_refs(self) -> list[str]:
        return [subnet_ref(v.rid, s.rid) for v in self.vnets.values() for s in v.subnets]

    def subnet(self, path: str) -> SubnetWrite:
        vnet = vnet_of(path)
        assert vnet is not None
        return next(s for s in self.vnets[vnet].subnets if subnet_ref(vnet, s.rid) == path)

    def configs(self) -> Iterable[tuple[NicWrite, ConfigWrite]]:
        for nic in self.nics.values():
            for config in nic.configs:
                yield nic, config

    def subnet_in_use(self, path: str) -> bool:
        frontends = (f for lb in self.lbs.values() for f in lb.frontends)
        return any(config.subnet == path for _, config in self.configs()) or any(
            f.subnet == path for f in frontends
        )

    def acl_in_use(self, rid: str) -> bool:
        subnets = (s for v in self.vnets.values() for s in v.subnets)
        return any(s.acl == rid for s in subnets) or any(c.acl == rid for _, c in self.configs())

    def lb_child_in_use(self, path: str) -> bool:
        """Whether an ipConfiguration names a load balancer child (a pool or a NAT rule), or
        a rule of another load balancer write would still name it."""
        return any(path in c.pools or c.nat == path for _, c in self.configs())

    def public_ip_in_use(self, rid: str) -> bool:
        frontends = (f for lb in self.lbs.values() for f in lb.frontends)
        return any(f.public_ip == rid for f in frontends) or any(
            c.public_ip == rid for _, c in self.configs()
        )

    def table_in_use(self, rid: str) -> bool:
        return any(s.table == rid for v in self.vnets.values() for s in v.subnets)

    def free_ips(self, subnet: str, nic: NicWrite | None = None, skip: str = "") -> list[str]:
        """A few addresses of ``subnet`` no ipConfiguration holds, were ``nic`` written as it
        is without its ipConfiguration ``skip``."""
        others = (n for n in self.nics.values() if nic is None or n.rid != nic.rid)
        configs = [c for n in others for c in n.configs]
        configs += [c for c in nic.configs if c.rid != skip] if nic is not None else []
        used = {c.ip for c in configs if c.subnet == subnet}
        if subnet == VLAN_SUBNET:
            candidates = [f"172.16.200.{i}" for i in range(10, 18)]
        else:
            third = 2 * self.subnet(subnet).slot
            candidates = [f"192.168.{third}.{i}" for i in range(2, 10)]
        return [ip for ip in candidates if ip not in used]


# -- a fixed topology: hosts with endpoints in one virtual network --------------------------

WEB = VnetWrite("Web", (SubnetWrite("Front", 0, length=16),))


def web_hosts(world: World, hosts: Sequence[str], per_host: int, first: int = 0) -> list[Change]:
    """Servers ``hosts`` (numbered from ``first``), each with a provider address and a NIC
    (``Nic<i>``) of ``per_host`` ipConfigurations in ``WEB``'s subnet (192.168.<i>.<n + 10>);
    ``WEB`` itself is the caller's to put first."""
    changes = []
    for i, host in enumerate(hosts, start=first):
        changes.append(world.put_server(ServerWrite(host)))
        changes.append(world.report_address(host, f"10.10.56.{i + 11}"))
    for i, host in enumerate(hosts, start=first):
        configs = tuple(
            ConfigWrite(f"c{n}", subnet_ref("Web", "Front"), f"192.168.{i}.{n + 10}")
            for n in range(per_host)
        )
        changes.append(world.put_nic(NicWrite(f"Nic{i}", host, configs=configs)))
    return changes


# -- the generated clients ----------------------------------------------------------------


def _pick(draw: Draw, items: Iterable[Any]) -> Any:
    return draw(st.sampled_from(list(items)))


def _rule(draw: Draw, taken: set[tuple[str, int]]) -> Json:
    slots = [
        (d, p)
        for d in ("Inbound", "Outbound")
        for p in (100, 200, 300, 4096)
        if (d, p) not in taken
    ]
    direction, priority = _pick(draw, slots)
    protocol = _pick(draw, ("TCP", "UDP", "All", "ICMPv4"))
    ports = ("*", "80", "443", "1024-2048", "80,443") if protocol in ("TCP", "UDP") else ("*",)
    prefixes = ("*", "Internet", "VirtualNetwork", "192.168.0.0/24", "192.168.2.7")
    properties: Json = {
        "protocol": protocol,
        "sourcePortRange": _pick(draw, ports),
        "destinationPortRange": _pick(draw, ports),
        "sourceAddressPrefix": _pick(draw, prefixes),
        "destinationAddressPrefix": _pick(draw, prefixes),
        "action": _pick(draw, ("Allow", "Deny")),
        "priority": priority,
        "type": direction,
        "logging": _pick(draw, ("Enabled", "Disabled")),
    }
    if draw(st.booleans()):
        properties["description"] = "generated"
    return properties


def _rules(draw: Draw, count: int) -> tuple[tuple[str, Json], ...]:
    taken: set[tuple[str, int]] = set()
    rules: list[tuple[str, Json]] = []
    for rid in RULE_IDS[:count]:
        properties = _rule(draw, taken)
        taken.add((properties["type"], properties["priority"]))
        rules.append((rid, properties))
    return tuple(rules)


def _route(draw: Draw, taken: set[str]) -> Json:
    prefix = _pick(
        draw,
        [
            p
            for p in ("0.0.0.0/0", "10.0.0.0/8", "172.16.0.0/12", "192.168.100.0/24")
            if p not in taken
        ],
    )
    hop = _pick(
        draw, ("VirtualAppliance", "VnetLocal", "VirtualNetworkGateway", "Internet", "None")
    )
    properties: Json = {"addressPrefix": prefix, "nextHopType": hop}
    if hop == "VirtualAppliance":
        properties["nextHopIpAddress"] = _pick(draw, ("192.168.1.10", "192.168.1.11"))
    return properties


def _optional(draw: Draw, items: Iterable[str]) -> str | None:
    chosen: str | None = _pick(draw, [None, *items])
    return chosen


def _subnets_for(world: World, nic: NicWrite, skip: str = "") -> list[str]:
    """Subnets an ipConfiguration of ``nic`` (other than ``skip``) may be in, with an address
    left: any, for a multitenant stack; else the virtual network of its other
    ipConfigurations, if any; the VLAN subnet always."""
    networks = {vnet_of(c.subnet) for c in nic.configs if c.rid != skip} - {None}
    candidates = [
        s for s in world.subnet_refs() if nic.multitenant or not networks or vnet_of(s) in networks
    ]
    return [s for s in [*candidates, VLAN_SUBNET] if world.free_ips(s, nic, skip)]


def _config(draw: Draw, world: World, nic: NicWrite, rid: str, subnet: str) -> ConfigWrite:
    static = draw(st.booleans())
    free = world.free_ips(subnet, nic, skip=rid)
    ip = _pick(draw, free) if static else free[0]  # Dynamic: the lowest free address
    return ConfigWrite(rid, subnet, ip, static, _optional(draw, world.acls))


def _with_config(nic: NicWrite, config: ConfigWrite) -> NicWrite:
    configs = tuple(config if c.rid == config.rid else c for c in nic.configs)
    return replace(nic, configs=configs)


def _with_subnet(vnet: VnetWrite, subnet: SubnetWrite) -> VnetWrite:
    return replace(vnet, subnets=tuple(subnet if s.rid == subnet.rid else s for s in vnet.subnets))


Written = tuple[str, Change]  # (what the client did, the change recorded)


def server_create(world: World, draw: Draw) -> Written:
    rid = _pick(draw, [s for s in SERVER_IDS if s not in world.servers])
    host = f"host{SERVER_IDS.index(rid) + 1}.contoso.com"
    return "server.create", world.put_server(ServerWrite(rid, host, draw(st.booleans())))


def server_replace(world: World, draw: Draw) -> Written:
    old = world.servers[_pick(draw, world.servers)]
    new = replace(
        old, bmc=draw(st.booleans()), management=_pick(draw, (old.management, "10.0.0.9"))
    )
    return ("server.same" if new == old else "server.replace"), world.put_server(new)


def server_delete(world: World, draw: Draw) -> Written:
    used = {n.server for n in world.nics.values()} | set(world.muxes.values())
    return "server.delete", world.delete_server(
        _pick(draw, [s for s in world.servers if s not in used])
    )


def agent_address(world: World, draw: Draw) -> Written:
    server = _pick(draw, world.servers)
    address = _pick(draw, PROVIDER_ADDRESSES)
    same = world.addresses.get(server) == address
    return ("agent.address.same" if same else "agent.address"), world.report_address(
        server, address
    )


def acl_create(world: World, draw: Draw) -> Written:
    rid = _pick(draw, [a for a in ACL_IDS if a not in world.acls])
    inbound, outbound = _pick(draw, ("Permit", "Deny")), _pick(draw, ("Permit", "Deny"))
    rules = _rules(draw, draw(st.integers(0, 3)))
    return "acl.create", world.put_acl(AclWrite(rid, inbound, outbound, rules))


def acl_replace(world: World, draw: Draw) -> Written:
    acl = world.acls[_pick(draw, world.acls)]
    taken = {(p["type"], p["priority"]) for _, p in acl.rules}
    free = [r for r in RULE_IDS if r not in dict(acl.rules)]
    ways = [
        "defaults",
        "same",
        *(["rule.add"] if free else []),
        *(["rule.delete", "rule.edit"] if acl.rules else []),
    ]
    way = _pick(draw, ways)
    if way == "rule.add":
        new = replace(acl, rules=(*acl.rules, (_pick(draw, free), _rule(draw, taken))))
    elif way == "rule.delete":
        gone = _pick(draw, dict(acl.rules))
        new = replace(acl, rules=tuple(r for r in acl.rules if r[0] != gone))
    elif way == "rule.edit":
        edited, old = _pick(draw, acl.rules)
        properties = _rule(draw, taken - {(old["type"], old["priority"])})
        new = replace(acl, rules=tuple((r, properties if r == edited else p) for r, p in acl.rules))
    elif way == "defaults":
        new = replace(
            acl, inbound=_pick(draw, ("Permit", "Deny")), outbound=_pick(draw, ("Permit", "Deny"))
        )
    else:
        new = acl
    return ("acl.same" if new == acl else f"acl.{way}"), world.put_acl(new)


def acl_delete(world: World, draw: Draw) -> Written:
    return "acl.delete", world.delete_acl(
        _pick(draw, [a for a in world.acls if not world.acl_in_use(a)])
    )


def table_create(world: World, draw: Draw) -> Written:
    rid = _pick(draw, [t for t in TABLE_IDS if t not in world.tables])
    routes: list[tuple[str, Json]] = []
    for route in ROUTE_IDS[: draw(st.integers(0, 2))]:
        routes.append((route, _route(draw, {p["addressPrefix"] for _, p in routes})))
    return "routeTable.create", world.put_table(TableWrite(rid, tuple(routes)))


def table_replace(world: World, draw: Draw) -> Written:
    table = world.tables[_pick(draw, world.tables)]
    taken = {p["addressPrefix"] for _, p in table.routes}
    free = [r for r in ROUTE_IDS if r not in dict(table.routes)]
    ways = [
        "same",
        *(["route.add"] if free else []),
        *(["route.delete", "route.edit"] if table.routes else []),
    ]
    way = _pick(draw, ways)
    if way == "route.add":
        new = replace(table, routes=(*table.routes, (_pick(draw, free), _route(draw, taken))))
    elif way == "route.delete":
        gone = _pick(draw, dict(table.routes))
        new = replace(table, routes=tuple(r for r in table.routes if r[0] != gone))
    elif way == "route.edit":
        edited, old = _pick(draw, table.routes)
        properties = _route(draw, taken - {old["addressPrefix"]})
        new = replace(
            table, routes=tuple((r, properties if r == edited else p) for r, p in table.routes)
        )
    else:
        new = table
    return ("routeTable.same" if new == table else f"routeTable.{way}"), world.put_table(new)


def table_delete(world: World, draw: Draw) -> Written:
    return "routeTable.delete", world.delete_table(
        _pick(draw, [t for t in world.tables if not world.table_in_use(t)])
    )


def _new_subnet(draw: Draw, world: World, vnet: VnetWrite | None) -> SubnetWrite:
    taken = vnet.subnets if vnet else ()
    rid = _pick(draw, [s for s in SUBNET_IDS if s not in {t.rid for t in taken}])
    slot = _pick(draw, [i for i in range(4) if i not in {t.slot for t in taken}])
    return SubnetWrite(
        rid, slot, _pick(draw, (24, 23)), _optional(draw, world.acls), _optional(draw, world.tables)
    )


def vnet_create(world: World, draw: Draw, *, subnets: int = 0) -> Written:
    """A new virtual network with at least ``subnets`` subnets."""
    vnet = VnetWrite(_pick(draw, [v for v in VNET_IDS if v not in world.vnets]))
    for _ in range(draw(st.integers(subnets, 3))):
        vnet = replace(vnet, subnets=(*vnet.subnets, _new_subnet(draw, world, vnet)))
    return "vnet.create", world.put_vnet(vnet)


def vnet_replace(world: World, draw: Draw) -> Written:
    vnet = world.vnets[_pick(draw, world.vnets)]
    unused = [s for s in vnet.subnets if not world.subnet_in_use(subnet_ref(vnet.rid, s.rid))]
    ways = [
        "same",
        *(["subnet.add"] if len(vnet.subnets) < len(SUBNET_IDS) else []),
        *(["subnet.delete"] if unused else []),
        *(["subnet.acl", "subnet.routeTable", "subnet.prefix"] if vnet.subnets else []),
    ]
    way = _pick(draw, ways)
    if way == "subnet.add":
        new = replace(vnet, subnets=(*vnet.subnets, _new_subnet(draw, world, vnet)))
    elif way == "subnet.delete":
        gone = _pick(draw, unused)
        new = replace(vnet, subnets=tuple(s for s in vnet.subnets if s != gone))
    elif way == "subnet.acl":
        subnet = _pick(draw, vnet.subnets)
        acls = [a for a in [None, *world.acls] if a != subnet.acl]
        new = _with_subnet(vnet, replace(subnet, acl=_pick(draw, acls))) if acls else vnet
    elif way == "subnet.routeTable":
        subnet = _pick(draw, vnet.subnets)
        tables = [t for t in [None, *world.tables] if t != subnet.table]
        new = _with_subnet(vnet, replace(subnet, table=_pick(draw, tables))) if tables else vnet
    elif way == "subnet.prefix":
        subnet = _pick(draw, vnet.subnets)
        new = _with_subnet(vnet, replace(subnet, length=47 - subnet.length))  # /24 <-> /23
    else:
        new = vnet
    return ("vnet.same" if new == vnet else f"vnet.{way}"), world.put_vnet(new)


def vnet_delete(world: World, draw: Draw) -> Written:
    free = [
        v.rid
        for v in world.vnets.values()
        if not any(world.subnet_in_use(subnet_ref(v.rid, s.rid)) for s in v.subnets)
    ]
    return "vnet.delete", world.delete_vnet(_pick(draw, free))


def nic_create(world: World, draw: Draw, *, placed: bool = False) -> Written:
    """A new NIC; ``placed``: bound to a server, with at least one ipConfiguration."""
    nic = NicWrite(
        _pick(draw, [n for n in NIC_IDS if n not in world.nics]),
        _pick(draw, world.servers) if placed and world.servers else _optional(draw, world.servers),
        draw(st.booleans()),
        _pick(draw, QOS_CHOICES),
    )
    for rid in CONFIG_IDS[: draw(st.integers(1 if placed else 0, 3))]:
        subnets = _subnets_for(world, nic)
        if subnets:
            config = _config(draw, world, nic, rid, _pick(draw, subnets))
            nic = replace(nic, configs=(*nic.configs, config))
    return "nic.create", world.put_nic(nic)


def nic_move(world: World, draw: Draw) -> Written:
    nic = world.nics[_pick(draw, world.nics)]
    server = _pick(draw, [s for s in [None, *world.servers] if s != nic.server])
    return ("nic.unbind" if server is None else "nic.move"), world.put_nic(
        replace(nic, server=server)
    )


def nic_replace(world: World, draw: Draw) -> Written:
    nic = world.nics[_pick(draw, world.nics)]
    free = [c for c in CONFIG_IDS if c not in {k.rid for k in nic.configs}]
    readdressable = {
        c.rid: others
        for c in nic.configs
        if (others := [ip for ip in world.free_ips(c.subnet, nic, c.rid) if ip != c.ip])
    }
    networks = {vnet_of(c.subnet) for c in nic.configs} - {None}
    ways = [
        "same",
        "qos",
        *(["config.add"] if free and _subnets_for(world, nic) else []),
        *(["config.delete", "config.acl", "config.subnet"] if nic.configs else []),
        *(["config.readdress"] if readdressable else []),
        *(["multitenant"] if not nic.multitenant or len(networks) <= 1 else []),
    ]
    way = _pick(draw, ways)
    new = nic
    if way == "qos":
        new = replace(nic, qos=_pick(draw, [q for q in QOS_CHOICES if q != nic.qos]))
    elif way == "multitenant":
        new = replace(nic, multitenant=not nic.multitenant)
    elif way == "config.add":
        subnet = _pick(draw, _subnets_for(world, nic))
        new = replace(
            nic, configs=(*nic.configs, _config(draw, world, nic, _pick(draw, free), subnet))
        )
    elif way == "config.delete":
        gone = _pick(draw, nic.configs)
        new = replace(nic, configs=tuple(c for c in nic.configs if c != gone))
    elif way == "config.acl":
        config = _pick(draw, nic.configs)
        acls = [a for a in [None, *world.acls] if a != config.acl]
        if acls:
            new = _with_config(nic, replace(config, acl=_pick(draw, acls)))
        else:
            way = "same"
    elif way == "config.subnet":
        config = _pick(draw, nic.configs)
        subnets = [s for s in _subnets_for(world, nic, skip=config.rid) if s != config.subnet]
        if subnets:
            moved = _config(draw, world, nic, config.rid, _pick(draw, subnets))
            new = _with_config(nic, replace(moved, acl=config.acl))
        else:
            way = "same"
    elif way == "config.readdress":
        chosen = _pick(draw, readdressable)
        config = next(c for c in nic.configs if c.rid == chosen)
        new = _with_config(
            nic, replace(config, ip=_pick(draw, readdressable[config.rid]), static=True)
        )
    return ("nic.same" if new == nic else f"nic.{way}"), world.put_nic(new)


def nic_delete(world: World, draw: Draw) -> Written:
    return "nic.delete", world.delete_nic(_pick(draw, world.nics))


def fabric_put(world: World, draw: Draw) -> Written:
    encapsulation = _pick(draw, ("Vxlan", "NvGRE"))
    label = "fabric.same" if encapsulation == world.encapsulation else "fabric.put"
    return label, world.put_fabric(encapsulation)


def unread_kind(world: World, draw: Draw) -> Written:
    if draw(st.booleans()):
        return "logicalNetwork.put", world.put_vlan(draw(st.booleans()))
    return "virtualSwitchManager.put", world.put_switch(draw(st.booleans()))


# -- load balancing ----------------------------------------------------------------------


def _lb_pools(world: World) -> list[str]:
    return [lb.path("backendAddressPools", p) for lb in world.lbs.values() for p in lb.pools]


def _free_nats(world: World) -> list[str]:
    bound = {c.nat for _, c in world.configs()}
    nats = [
        lb.path(r.kind, r.rid)
        for lb in world.lbs.values()
        for r in lb.rules
        if r.kind == "inboundNatRules"
    ]
    return [n for n in nats if n not in bound]


def _free_public_ips(world: World) -> list[str]:
    return [p for p in world.public_ips if not world.public_ip_in_use(p)]


def _frontend(draw: Draw, world: World, rid: str, taken: set[str]) -> FrontendWrite:
    ways = ["vip", *(["public"] if _free_public_ips(world) else [])]
    ways += ["internal"] if world.subnet_refs() else []
    way = _pick(draw, ways)
    if way == "public":
        free = [p for p in _free_public_ips(world) if p not in taken]
        if free:
            chosen = _pick(draw, free)
            taken.add(chosen)
            return FrontendWrite(rid, public_ip=chosen)
    if way == "internal":
        subnet = _pick(draw, world.subnet_refs())
        third = 2 * world.subnet(subnet).slot
        return FrontendWrite(rid, f"192.168.{third}.{100 + FRONTEND_IDS.index(rid)}", subnet)
    used = {f.ip for lb in world.lbs.values() for f in lb.frontends}
    return FrontendWrite(rid, _pick(draw, [v for v in VIPS if v not in used] or VIPS[:1]))


FRONTEND_IDS = ("FE1", "FE2")
LB_POOL_IDS = ("Pool1", "Pool2")
PROBE_IDS = ("Probe1", "Probe2")
LB_RULE_IDS = ("Rule1", "Rule2", "Rule3")
LB_RULE_KINDS = ("loadBalancingRules", "loadBalancingRules", "inboundNatRules", "outboundNatRules")


def _lb_rule(draw: Draw, lb: LbWrite, rid: str) -> LbRuleWrite:
    kind = _pick(draw, LB_RULE_KINDS)
    frontend = _pick(draw, [f.rid for f in lb.frontends])
    port = _pick(draw, (80, 443, 3389))
    if kind == "inboundNatRules":
        return LbRuleWrite(rid, kind, frontend, port=port)
    pool = _pick(draw, lb.pools)
    probe = _optional(draw, [p for p, _ in lb.probes]) if kind == "loadBalancingRules" else None
    distribution = _pick(draw, ("Default", "SourceIP"))
    return LbRuleWrite(rid, kind, frontend, pool, probe, port, distribution)


def lb_create(world: World, draw: Draw) -> Written:
    rid = _pick(draw, [b for b in LB_IDS if b not in world.lbs])
    taken: set[str] = set()
    frontends = tuple(
        _frontend(draw, world, f, taken) for f in FRONTEND_IDS[: draw(st.integers(1, 2))]
    )
    pools = LB_POOL_IDS[: draw(st.integers(1, 2))]
    probes = tuple((p, 8080 + i) for i, p in enumerate(PROBE_IDS[: draw(st.integers(0, 2))]))
    lb = LbWrite(rid, frontends, pools, probes)
    rules = tuple(_lb_rule(draw, lb, r) for r in LB_RULE_IDS[: draw(st.integers(1, 3))])
    return "lb.create", world.put_lb(replace(lb, rules=rules))


def lb_replace(world: World, draw: Draw) -> Written:
    lb = world.lbs[_pick(draw, world.lbs)]
    removable = [r for r in lb.rules if not world.lb_child_in_use(lb.path(r.kind, r.rid))]
    free = [r for r in LB_RULE_IDS if r not in {k.rid for k in lb.rules}]
    ways = [
        "same",
        *(["rule.add"] if free else []),
        *(["rule.delete"] if removable else []),
        *(["probe.port"] if lb.probes else []),
        *(["rule.probe"] if lb.probes and lb.rules else []),
        "frontend.address",
    ]
    way = _pick(draw, ways)
    new = lb
    if way == "rule.add":
        new = replace(lb, rules=(*lb.rules, _lb_rule(draw, lb, _pick(draw, free))))
    elif way == "rule.delete":
        gone = _pick(draw, removable)
        new = replace(lb, rules=tuple(r for r in lb.rules if r != gone))
    elif way == "probe.port":
        edited = _pick(draw, [p for p, _ in lb.probes])
        port = draw(st.integers(8000, 8003))
        new = replace(lb, probes=tuple((p, port if p == edited else q) for p, q in lb.probes))
    elif way == "rule.probe":
        rules = [r for r in lb.rules if r.kind == "loadBalancingRules"]
        if rules:
            rule = _pick(draw, rules)
            probe = _optional(draw, [p for p, _ in lb.probes])
            edited = replace(rule, probe=probe)
            new = replace(lb, rules=tuple(edited if r == rule else r for r in lb.rules))
    elif way == "frontend.address":
        frontend = _pick(draw, lb.frontends)
        if frontend.public_ip is None and frontend.subnet is None:
            used = {f.ip for b in world.lbs.values() for f in b.frontends}
            free_vips = [v for v in VIPS if v not in used]
            if free_vips:
                moved = replace(frontend, ip=_pick(draw, free_vips))
                frontends = tuple(moved if f == frontend else f for f in lb.frontends)
                new = replace(lb, frontends=frontends)
    return ("lb.same" if new == lb else f"lb.{way}"), world.put_lb(new)


def lb_delete(world: World, draw: Draw) -> Written:
    free = [
        b
        for b, lb in world.lbs.items()
        if not any(world.lb_child_in_use(c) for c in world._children[ref("loadBalancers", b)])
    ]
    return "lb.delete", world.delete_lb(_pick(draw, free))


def _lb_deletable(world: World) -> bool:
    return any(
        not any(world.lb_child_in_use(c) for c in world._children[ref("loadBalancers", b)])
        for b in world.lbs
    )


def public_ip_put(world: World, draw: Draw) -> Written:
    rid = _pick(draw, PUBLIC_IP_IDS)
    used = {a for p, a in world.public_ips.items() if p != rid}
    address = _pick(draw, [a for a in PUBLIC_ADDRESSES if a not in used])
    return "publicIp.put", world.put_public_ip(rid, address)


def public_ip_delete(world: World, draw: Draw) -> Written:
    return "publicIp.delete", world.delete_public_ip(_pick(draw, _free_public_ips(world)))


def mux_put(world: World, draw: Draw) -> Written:
    rid = _pick(draw, MUX_IDS)
    return "mux.put", world.put_mux(rid, _optional(draw, world.servers))


def mux_delete(world: World, draw: Draw) -> Written:
    return "mux.delete", world.delete_mux(_pick(draw, world.muxes))


def _probed(world: World) -> list[tuple[str, str, str | None]]:
    """(probe ref, ipConfiguration ref, its NIC's server) of every DIP a probe covers."""
    found = []
    for lb in world.lbs.values():
        for rule in lb.rules:
            if rule.probe is None or rule.pool is None:
                continue
            pool = lb.path("backendAddressPools", rule.pool)
            for nic, config in world.configs():
                if pool in config.pools:
                    config_ref = f"/networkInterfaces/{nic.rid}/ipConfigurations/{config.rid}"
                    found.append((lb.path("probes", rule.probe), config_ref, nic.server))
    return found


def health_report(world: World, draw: Draw) -> Written:
    probe, config, server = _pick(draw, _probed(world))
    reporter = server if server is not None else _pick(draw, world.servers)
    state = _pick(draw, ("Up", "Down"))
    held = world.health.get((probe, config))
    label = "health.same" if held == (reporter, state) else f"health.{state.lower()}"
    return label, world.report_health(reporter, probe, config, state)


def nic_balance(world: World, draw: Draw) -> Written:
    """Put an ipConfiguration into (or out of) backend pools, a NAT rule, a public IP."""
    nic = world.nics[_pick(draw, [n for n, w in world.nics.items() if w.configs])]
    config = _pick(draw, nic.configs)
    pools = tuple(p for p in _lb_pools(world) if draw(st.booleans()))
    nats = [n for n in _free_nats(world) if n != config.nat]
    nat = _optional(draw, [*nats, *([config.nat] if config.nat else [])])
    public = _optional(
        draw, [*_free_public_ips(world), *([config.public_ip] if config.public_ip else [])]
    )
    new = _with_config(nic, replace(config, pools=pools, nat=nat, public_ip=public))
    return ("nic.same" if new == nic else "nic.balance"), world.put_nic(new)


@dataclass(frozen=True)
class Operation:
    run: Callable[[World, Draw], Written]
    applicable: Callable[[World], bool]
    weight: int = 1


def _has_unused(world: World) -> bool:
    used = {n.server for n in world.nics.values()} | set(world.muxes.values())
    return any(s not in used for s in world.servers)


def _vnet_free(world: World) -> bool:
    return any(
        not any(world.subnet_in_use(subnet_ref(v.rid, s.rid)) for s in v.subnets)
        for v in world.vnets.values()
    )


OPERATIONS = (
    Operation(server_create, lambda w: len(w.servers) < len(SERVER_IDS)),
    Operation(server_replace, lambda w: bool(w.servers)),
    Operation(server_delete, _has_unused),
    Operation(agent_address, lambda w: bool(w.servers), 2),
    Operation(acl_create, lambda w: len(w.acls) < len(ACL_IDS)),
    Operation(acl_replace, lambda w: bool(w.acls), 2),
    Operation(acl_delete, lambda w: any(not w.acl_in_use(a) for a in w.acls)),
    Operation(table_create, lambda w: len(w.tables) < len(TABLE_IDS)),
    Operation(table_replace, lambda w: bool(w.tables)),
    Operation(table_delete, lambda w: any(not w.table_in_use(t) for t in w.tables)),
    Operation(vnet_create, lambda w: len(w.vnets) < len(VNET_IDS)),
    Operation(vnet_replace, lambda w: bool(w.vnets), 4),
    Operation(vnet_delete, _vnet_free),
    Operation(nic_create, lambda w: len(w.nics) < len(NIC_IDS), 2),
    Operation(nic_move, lambda w: bool(w.nics) and bool(w.servers), 3),
    Operation(nic_replace, lambda w: bool(w.nics), 6),
    Operation(nic_delete, lambda w: bool(w.nics)),
    Operation(fabric_put, lambda w: True),
    Operation(unread_kind, lambda w: True),
    Operation(lb_create, lambda w: len(w.lbs) < len(LB_IDS)),
    Operation(lb_replace, lambda w: bool(w.lbs), 2),
    Operation(lb_delete, _lb_deletable),
    Operation(public_ip_put, lambda w: True),
    Operation(public_ip_delete, lambda w: bool(_free_public_ips(w))),
    Operation(mux_put, lambda w: True),
    Operation(mux_delete, lambda w: bool(w.muxes)),
    Operation(nic_balance, lambda w: bool(w.lbs) and any(n.configs for n in w.nics.values()), 3),
    Operation(health_report, lambda w: bool(_probed(w)) and bool(w.servers), 4),
)


def write(world: World, draw: Draw) -> Written:
    """One random write a client could make now, and the change it records."""
    candidates = [op for op in OPERATIONS if op.applicable(world) for _ in range(op.weight)]
    operation: Operation = draw(st.sampled_from(candidates))
    return operation.run(world, draw)


# -- strategies ---------------------------------------------------------------------------


def build(world: World, draw: Draw) -> Iterator[Written]:
    """A tenant build-out in the order a script makes it: servers (most with the provider
    address their agent reports), ACLs, route tables, virtual networks with subnets, NICs
    bound to servers with ipConfigurations."""
    if draw(st.booleans()):
        yield fabric_put(world, draw)
    for _ in range(draw(st.integers(2, len(SERVER_IDS)))):
        label, change = server_create(world, draw)
        yield label, change
        if draw(st.integers(0, 3)):  # three agents in four have reported
            rid = next(reversed(world.servers))
            yield "agent.address", world.report_address(rid, _pick(draw, PROVIDER_ADDRESSES))
    for _ in range(draw(st.integers(0, len(ACL_IDS)))):
        yield acl_create(world, draw)
    for _ in range(draw(st.integers(0, len(TABLE_IDS)))):
        yield table_create(world, draw)
    for _ in range(draw(st.integers(1, len(VNET_IDS)))):
        yield vnet_create(world, draw, subnets=1)
    for _ in range(draw(st.integers(2, len(NIC_IDS)))):
        yield nic_create(world, draw, placed=draw(st.integers(0, 4)) > 0)
    if draw(st.integers(0, 3)):  # three build-outs in four balance some load
        if draw(st.booleans()):
            yield public_ip_put(world, draw)
        yield lb_create(world, draw)
        if draw(st.booleans()):
            yield mux_put(world, draw)
        for _ in range(
            draw(st.integers(1, 3)) if any(n.configs for n in world.nics.values()) else 0
        ):
            yield nic_balance(world, draw)
        for _ in range(draw(st.integers(0, 3)) if _probed(world) else 0):
            yield health_report(world, draw)


@st.composite
def worlds(draw: Draw, max_writes: int = 20) -> World:
    """A topology: a build-out, then up to ``max_writes`` random writes (changes, deletions
    and creations, so resources may have been removed and created again)."""
    world = World()
    for _ in build(world, draw):
        pass
    for _ in range(draw(st.integers(0, max_writes))):
        write(world, draw)
    return world


@dataclass(frozen=True)
class Step:
    label: str
    change: Change
    documents: tuple[Change, ...]  # every policy aggregate after the change


@dataclass(frozen=True)
class Scenario:
    """A replica loads ``initial`` at revision ``start`` (nothing at 0), then follows
    ``steps``; ``hosts`` are the instanceIds of every server that ever existed."""

    start: int
    initial: tuple[Change, ...]
    steps: tuple[Step, ...]
    hosts: tuple[str, ...]

    def __repr__(self) -> str:
        lines = [f"Scenario(start={self.start}, {len(self.initial)} aggregates loaded, steps:"]
        lines += [
            f"  r{s.change.revision} {s.label} {s.change.kind} {s.change.root}" for s in self.steps
        ]
        return "\n".join(lines) + ")"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How Hypothesis shows a falsifying example: the steps, not every document."""
        printer.text(repr(self))


@st.composite
def scenarios(draw: Draw, max_setup: int = 10, max_steps: int = 25) -> Scenario:
    """A replica's history. Either it loads a topology (a build-out and up to ``max_setup``
    random writes) at its revision and follows up to ``max_steps`` random writes; or it starts
    empty at revision 0 and follows the build-out too."""
    world = World()
    steps: list[Step] = []

    def record(written: Written) -> None:
        label, change = written
        steps.append(Step(label, change, tuple(world.documents())))

    loaded = draw(st.booleans())
    for written in build(world, draw):
        if not loaded:
            record(written)
    if loaded:
        for _ in range(draw(st.integers(0, max_setup))):
            write(world, draw)
        start, initial = world.revision, tuple(world.documents())
    else:
        start, initial = 0, ()
    for _ in range(draw(st.integers(1, max_steps))):
        record(write(world, draw))
    return Scenario(start, initial, tuple(steps), tuple(world.hosts_seen))
