"""The load-balancing objects: who gets which, what a DIP's health does to them, and the slot
table's promise that a DIP change moves about 1/N of the slots and never any other."""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import replace

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from controller.policy import Compiler, HostDelta, full_compile, slots
from tests.policy.strategies import (
    VLAN_SUBNET,
    ConfigWrite,
    FrontendWrite,
    LbRuleWrite,
    LbWrite,
    NicWrite,
    ServerWrite,
    SubnetWrite,
    VnetWrite,
    World,
    subnet_ref,
    write,
)

# -- the slot table -------------------------------------------------------------------------

ADDRESSES = st.integers(1, 2**24).map(lambda n: str(ipaddress.IPv4Address(0x0A000000 + n)))
POOLS = st.sets(ADDRESSES, min_size=2, max_size=40)


def _owners(dips: set[str]) -> list[str]:
    ordered = slots.ordered(dips)
    return [ordered[index] for index in slots.table(ordered)]


@settings(max_examples=150, deadline=None)
@given(POOLS, st.data())
def test_a_dip_that_leaves_loses_its_slots_and_no_other_slot_moves(
    dips: set[str], data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(sorted(dips)))
    before, after = _owners(dips), _owners(dips - {gone})
    moved = [slot for slot, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert moved == [slot for slot, owner in enumerate(before) if owner == gone]
    # About 1/N of the table: well within four standard deviations of the binomial share.
    size, n = len(before), len(dips)
    mean = size / n
    assert abs(len(moved) - mean) <= 4 * (mean * (1 - 1 / n)) ** 0.5 + 1


@settings(max_examples=150, deadline=None)
@given(POOLS, ADDRESSES)
def test_a_dip_that_comes_takes_only_the_slots_it_wins(dips: set[str], new: str) -> None:
    if new in dips:
        return
    before, after = _owners(dips), _owners(dips | {new})
    for old_owner, new_owner in zip(before, after, strict=True):
        assert new_owner in (old_owner, new)
    assert Counter(after)[new] > 0


@settings(max_examples=50, deadline=None)
@given(POOLS, st.randoms(use_true_random=False))
def test_the_table_depends_only_on_the_set_of_dips(dips: set[str], rnd: object) -> None:
    shuffled = list(dips)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert _owners(set(shuffled)) == _owners(dips)
    ordered = slots.ordered(dips)
    table = slots.table(ordered)
    assert slots.decode(slots.encode(table, len(ordered)), len(ordered)) == table
    assert len(table) == slots.table_size(len(ordered))


def test_every_dip_holds_a_fair_share() -> None:
    counts = Counter(_owners({f"10.0.0.{i}" for i in range(1, 11)}))
    assert len(counts) == 10
    assert all(70 <= count <= 135 for count in counts.values()), counts


# -- a deployment -----------------------------------------------------------------------------

HOSTS = ("Host-A", "Host-B", "Host-C", "Host-Mux")
POOL = "/loadBalancers/Web/backendAddressPools/Pool"
NAT = "/loadBalancers/Web/inboundNatRules/Rdp"
PROBE = "/loadBalancers/Web/probes/Http"


def _deployment() -> tuple[World, Compiler, dict[str, str]]:
    """Web VMs on hosts A and B in pool ``Pool`` of a public VIP with a probed rule, an
    unprobed rule and an outbound rule, an internal VIP in the tenant's subnet, an inbound NAT
    rule to the first VM, a mux on Host-Mux, and an unrelated tenant VM on host C."""
    world = World()
    changes = [world.put_server(ServerWrite(h)) for h in HOSTS]
    changes += [world.report_address(h, f"10.10.56.{i + 11}") for i, h in enumerate(HOSTS)]
    changes.append(world.put_vnet(VnetWrite("Web", (SubnetWrite("Front", 0),))))
    changes.append(world.put_vnet(VnetWrite("Other", (SubnetWrite("Front", 1),))))
    web = LbWrite(
        "Web",
        (
            FrontendWrite("Public", "41.40.40.8"),
            FrontendWrite("Internal", "192.168.0.100", subnet_ref("Web", "Front")),
        ),
        ("Pool",),
        (("Http", 8080),),
        (
            LbRuleWrite("Probed", "loadBalancingRules", "Public", "Pool", "Http", 80),
            LbRuleWrite("Plain", "loadBalancingRules", "Internal", "Pool", None, 443),
            LbRuleWrite("Out", "outboundNatRules", "Public", "Pool"),
            LbRuleWrite("Rdp", "inboundNatRules", "Public", port=3389),
        ),
    )
    changes.append(world.put_lb(web))
    changes.append(world.put_mux("Mux1", "Host-Mux"))
    for index, host in enumerate(("Host-A", "Host-B", "Host-A")):
        config = ConfigWrite(
            "IpConfig1",
            subnet_ref("Web", "Front"),
            f"192.168.0.{index + 2}",
            pools=(POOL,),
            nat=NAT if index == 0 else None,
        )
        changes.append(world.put_nic(NicWrite(f"Web{index}", host, configs=(config,))))
    other = ConfigWrite("IpConfig1", subnet_ref("Other", "Front"), "192.168.2.2")
    changes.append(world.put_nic(NicWrite("Other0", "Host-C", configs=(other,))))
    compiler = Compiler()
    compiler.load(changes, world.revision)
    ids = {h: world.instance_id(f"/servers/{h}") for h in HOSTS}
    return world, compiler, ids


def _kinds(compiler: Compiler, host: str) -> Counter[str]:
    return Counter(
        key.split("/")[0]
        for key in compiler.snapshot(host)
        if key.startswith(("lb", "probe", "vipMap", "publicIp"))
    )


def test_each_object_goes_only_to_the_hosts_that_need_it() -> None:
    world, compiler, ids = _deployment()
    # DIP hosts: both rules, the outbound rule, the probe; the NAT rule on A, its DIP's host,
    # and on B, a host of its DIP's virtual network.
    assert _kinds(compiler, ids["Host-A"]) == {"lbRule": 2, "lbOutbound": 1, "lbNat": 1, "probe": 1}
    assert _kinds(compiler, ids["Host-B"]) == {"lbRule": 2, "lbOutbound": 1, "lbNat": 1, "probe": 1}
    # Another tenant's host: nothing.
    assert _kinds(compiler, ids["Host-C"]) == {}
    # The mux: every rule and where every DIP of both VIPs lives, but no probe.
    assert _kinds(compiler, ids["Host-Mux"]) == {
        "lbRule": 2,
        "lbOutbound": 1,
        "lbNat": 1,
        "vipMap": 2,
    }
    maps = [b for k, b in compiler.snapshot(ids["Host-Mux"]).items() if k.startswith("vipMap")]
    public = next(m for m in maps if m["vip"] == "41.40.40.8")
    vsid = _vsid(world, compiler, ids)
    # ... with the NIC's MAC, which the mux sends the flow to (the host honours its choice).
    assert public["dips"] == [
        {
            "ip": "192.168.0.2",
            "providerAddress": "10.10.56.11",
            "vsid": vsid,
            "mac": "001DD8B70001",
        },
        {
            "ip": "192.168.0.3",
            "providerAddress": "10.10.56.12",
            "vsid": vsid,
            "mac": "001DD8B70002",
        },
        {
            "ip": "192.168.0.4",
            "providerAddress": "10.10.56.11",
            "vsid": vsid,
            "mac": "001DD8B70003",
        },
    ]


def _vsid(world: World, compiler: Compiler, ids: dict[str, str]) -> object:
    """The VSID of the Web VMs' subnet, as their endpoint objects have it."""
    config = world.instance_id("/networkInterfaces/Web0/ipConfigurations/IpConfig1")
    vsid = compiler.snapshot(ids["Host-A"])[f"endpoint/{config}"]["vsid"]
    assert isinstance(vsid, int)
    return vsid


def _as_full_compile(world: World, compiler: Compiler, ids: dict[str, str]) -> None:
    full = full_compile(world.documents(), world.revision)
    assert {h: compiler.snapshot(h) for h in ids.values()} == {
        h: full.get(h, {}) for h in ids.values()
    }


def test_each_object_names_the_virtual_networks_whose_routers_hold_it() -> None:
    """The agent puts a rule in the router namespace of each virtual network it names: the
    DIPs' (their flows are translated there) and an internal VIP's (its endpoints reach the
    VIP without a mux); another tenant's network is never named."""
    world, compiler, ids = _deployment()
    web = world.instance_id("/virtualNetworks/Web")
    objects = compiler.snapshot(ids["Host-Mux"])
    named = {key.split("/")[0]: body["virtualNetworks"] for key, body in objects.items()
             if key.startswith(("lbRule", "lbNat", "lbOutbound"))}  # fmt: skip
    assert named == {"lbRule": [web], "lbNat": [web], "lbOutbound": [web]}
    assert world.instance_id("/virtualNetworks/Other") not in str(objects)


def _rule_body(compiler: Compiler, host: str, port: int) -> dict[str, object]:
    return next(
        body
        for key, body in compiler.snapshot(host).items()
        if key.startswith("lbRule/") and body["frontendPort"] == port
    )


def test_an_unhealthy_dip_leaves_exactly_the_rules_that_probe_it_and_comes_back() -> None:
    world, compiler, ids = _deployment()
    before = _rule_body(compiler, ids["Host-Mux"], 80)
    assert before["dips"] == ["192.168.0.2", "192.168.0.3", "192.168.0.4"]
    config = "/networkInterfaces/Web1/ipConfigurations/IpConfig1"
    deltas = compiler.apply(world.report_health("Host-B", PROBE, config, "Down"))
    # One object is recomputed: the probed rule (the unprobed one keeps the DIP).
    assert compiler.recomputed == 1
    after = _rule_body(compiler, ids["Host-Mux"], 80)
    assert after["dips"] == ["192.168.0.2", "192.168.0.4"]
    assert _rule_body(compiler, ids["Host-Mux"], 443)["dips"] == before["dips"]
    # Only the slots of the DIP that left moved.
    old = [before["dips"][i] for i in slots.decode(str(before["slots"]), 3)]  # type: ignore[index]
    new = [after["dips"][i] for i in slots.decode(str(after["slots"]), 2)]  # type: ignore[index]
    assert all(a == b for a, b in zip(old, new, strict=True) if a != "192.168.0.3")
    # Every host holding the rule gets the new table, and nothing else.
    assert set(deltas) == {ids["Host-A"], ids["Host-B"], ids["Host-Mux"]}
    assert all(len(d.upserts) == 1 and not d.deletes for d in deltas.values())
    assert {h: compiler.snapshot(h) for h in ids.values()} == {
        h: full_compile(world.documents(), world.revision).get(h, {}) for h in ids.values()
    }
    compiler.apply(world.report_health("Host-B", PROBE, config, "Up"))
    assert _rule_body(compiler, ids["Host-Mux"], 80) == before


def test_a_host_declared_gone_takes_its_reports_with_it() -> None:
    """A DIP whose host is gone (the NIC moved, then the server was deleted) is healthy again
    until its new host reports."""
    world, compiler, ids = _deployment()
    config = "/networkInterfaces/Web1/ipConfigurations/IpConfig1"
    compiler.apply(world.report_health("Host-B", PROBE, config, "Down"))
    nic = world.nics["Web1"]
    compiler.apply(world.put_nic(NicWrite(nic.rid, "Host-C", configs=nic.configs)))
    assert "192.168.0.3" not in _rule_body(compiler, ids["Host-Mux"], 80)["dips"]  # type: ignore[operator]
    compiler.apply(world.delete_server("Host-B"))
    assert "192.168.0.3" in _rule_body(compiler, ids["Host-Mux"], 80)["dips"]  # type: ignore[operator]
    assert (
        compiler.snapshot(ids["Host-Mux"])
        == full_compile(world.documents(), world.revision)[ids["Host-Mux"]]
    )


# -- what the mux and the hosts' data planes need -------------------------------------------


def _lb_keys(compiler: Compiler, host: str, kind: str) -> set[str]:
    return {key for key in compiler.snapshot(host) if key.startswith(f"{kind}/")}


def test_a_client_in_the_dips_virtual_network_balances_every_vip_at_its_own_host() -> None:
    """A host with an endpoint in the DIPs' virtual network but no DIP gets the rules and the
    NAT rule (of the public VIP too: east-west, without a mux), not the outbound rule or the
    probe; it gets them when an endpoint moves into that network and loses them when the
    last one leaves."""
    world, compiler, ids = _deployment()
    host_c, mux = ids["Host-C"], ids["Host-Mux"]
    assert _kinds(compiler, host_c) == {}
    other = world.nics["Other0"]
    client = ConfigWrite("IpConfig1", subnet_ref("Web", "Front"), "192.168.0.50")
    deltas = compiler.apply(world.put_nic(NicWrite(other.rid, "Host-C", configs=(client,))))
    assert _kinds(compiler, host_c) == {"lbRule": 2, "lbNat": 1}
    assert _lb_keys(compiler, host_c, "lbRule") == _lb_keys(compiler, mux, "lbRule")
    assert _lb_keys(compiler, host_c, "lbNat") == _lb_keys(compiler, mux, "lbNat")
    # The host joined those objects; the hosts already holding them got nothing new.
    lb = {k for k in deltas[host_c].upserts if k.startswith(("lbRule/", "lbNat/"))}
    assert lb == _lb_keys(compiler, mux, "lbRule") | _lb_keys(compiler, mux, "lbNat")
    assert not any(k.startswith("lb") for k in deltas.get(mux, HostDelta()).upserts)
    _as_full_compile(world, compiler, ids)
    deltas = compiler.apply(world.put_nic(other))
    assert _kinds(compiler, host_c) == {}
    assert {k for k in deltas[host_c].deletes if k.startswith("lb")} == lb
    _as_full_compile(world, compiler, ids)


def test_a_host_that_comes_with_an_endpoint_in_the_dips_network_gets_the_rules() -> None:
    """A new server with a new NIC in the DIPs' virtual network: its host joins that
    network, and so the rules' hosts (nothing about the rules themselves changed)."""
    world, compiler, ids = _deployment()
    compiler.apply(world.put_server(ServerWrite("Host-D")))
    ids["Host-D"] = world.instance_id("/servers/Host-D")
    client = ConfigWrite("IpConfig1", subnet_ref("Web", "Front"), "192.168.0.60")
    deltas = compiler.apply(world.put_nic(NicWrite("Client", "Host-D", configs=(client,))))
    assert _kinds(compiler, ids["Host-D"]) == {"lbRule": 2, "lbNat": 1}
    assert {k.split("/")[0] for k in deltas[ids["Host-D"]].upserts} >= {"lbRule", "lbNat"}
    _as_full_compile(world, compiler, ids)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_random_writes_to_a_balanced_deployment_match_the_full_compile(
    data: st.DataObject,
) -> None:
    """The generated clients' writes (``strategies.write``) on a deployment that has every
    load-balancing object from the start, so that endpoints come into and leave the DIPs'
    virtual network, DIPs move, addresses are reported, while rules hold DIPs: after every
    change each host holds exactly the full compile."""
    world, compiler, _ = _deployment()
    labels = []
    for _ in range(data.draw(st.integers(1, 12))):
        label, change = write(world, data.draw)
        labels.append(label)
        note(label)
        compiler.apply(change)
        full = full_compile(world.documents(), world.revision)
        hosts = world.hosts_seen
        assert set(full) <= set(hosts)
        assert {h: compiler.snapshot(h) for h in hosts} == {h: full.get(h, {}) for h in hosts}
    event(f"writes: {len(labels)}")


def test_a_public_ip_names_the_virtual_network_and_vsid_of_its_ipconfiguration() -> None:
    world, compiler, ids = _deployment()
    compiler.apply(world.put_public_ip("PIP1", "41.40.40.20"))
    web1 = world.nics["Web1"]
    bound = replace(web1.configs[0], public_ip="PIP1")
    compiler.apply(world.put_nic(replace(web1, configs=(bound,))))
    key = f"publicIp/{world.instance_id('/publicIPAddresses/PIP1')}"
    body = compiler.snapshot(ids["Host-B"])[key]
    assert body["virtualNetwork"] == world.instance_id("/virtualNetworks/Web")
    assert body["vsid"] == _vsid(world, compiler, ids)
    assert body["providerAddress"] == "10.10.56.12"
    assert compiler.snapshot(ids["Host-Mux"])[key] == body
    # Bound to an ipConfiguration of a logical (VLAN) subnet: no virtual network, no VSID.
    vlan = ConfigWrite("IpConfig1", VLAN_SUBNET, "172.16.200.10", public_ip="PIP1")
    compiler.apply(world.put_nic(replace(web1, configs=(replace(bound, public_ip=None),))))
    compiler.apply(world.put_nic(NicWrite("Vlan0", "Host-C", configs=(vlan,))))
    body = compiler.snapshot(ids["Host-C"])[key]
    assert (body["virtualNetwork"], body["vsid"]) == (None, None)
    _as_full_compile(world, compiler, ids)


def _outbound(compiler: Compiler, host: str) -> dict[str, object]:
    return next(b for k, b in compiler.snapshot(host).items() if k.startswith("lbOutbound/"))


def test_port_blocks_say_where_each_dip_lives_and_follow_its_provider_address() -> None:
    world, compiler, ids = _deployment()
    vsid = _vsid(world, compiler, ids)
    blocks = _outbound(compiler, ids["Host-Mux"])["portBlocks"]
    assert [(b["dip"], b["providerAddress"], b["vsid"]) for b in blocks] == [  # type: ignore[attr-defined]
        ("192.168.0.2", "10.10.56.11", vsid),
        ("192.168.0.3", "10.10.56.12", vsid),
        ("192.168.0.4", "10.10.56.11", vsid),
    ]
    deltas = compiler.apply(world.report_address("Host-B", "10.10.57.12"))
    outbound = next(k for k in compiler.snapshot(ids["Host-Mux"]) if k.startswith("lbOutbound/"))
    # The DIPs' hosts and the mux get the new blocks.
    assert {h for h, d in deltas.items() if outbound in d.upserts} == {
        ids["Host-A"],
        ids["Host-B"],
        ids["Host-Mux"],
    }
    blocks = _outbound(compiler, ids["Host-Mux"])["portBlocks"]
    assert [b["providerAddress"] for b in blocks] == ["10.10.56.11", "10.10.57.12", "10.10.56.11"]  # type: ignore[attr-defined]
    _as_full_compile(world, compiler, ids)


def test_a_subnet_whose_vsid_changes_updates_what_carries_it() -> None:
    """The NBI never changes the VSID of a subnet in use, but the compiler does not rely on
    it: the objects that carry a DIP's VSID (VIP maps, port blocks, public IPs) follow."""
    world, compiler, ids = _deployment()
    compiler.apply(world.put_public_ip("PIP1", "41.40.40.20"))
    web0 = world.nics["Web0"]
    compiler.apply(
        world.put_nic(replace(web0, configs=(replace(web0.configs[0], public_ip="PIP1"),)))
    )
    world._vsids[subnet_ref("Web", "Front")] = 9999
    compiler.apply(world.put_vnet(world.vnets["Web"]))
    objects = compiler.snapshot(ids["Host-Mux"])
    carried = [
        *(d["vsid"] for k, b in objects.items() if k.startswith("vipMap/") for d in b["dips"]),
        *(d["vsid"] for d in _outbound(compiler, ids["Host-Mux"])["portBlocks"]),  # type: ignore[attr-defined]
        *(b["vsid"] for k, b in objects.items() if k.startswith("publicIp/")),
    ]
    # Two VIP maps (the public VIP's, the internal VIP's) of three DIPs, three port blocks,
    # one public IP.
    assert len(carried) == 2 * 3 + 3 + 1
    assert set(carried) == {9999}
    _as_full_compile(world, compiler, ids)
