"""The load-balancing objects: who gets which, what a DIP's health does to them, and the slot
table's promise that a DIP change moves about 1/N of the slots and never any other."""

from __future__ import annotations

import ipaddress
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.policy import Compiler, full_compile, slots
from tests.policy.strategies import (
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
    _, compiler, ids = _deployment()
    # DIP hosts: both rules, the outbound rule, the probe; the NAT rule on A only.
    assert _kinds(compiler, ids["Host-A"]) == {"lbRule": 2, "lbOutbound": 1, "lbNat": 1, "probe": 1}
    assert _kinds(compiler, ids["Host-B"]) == {"lbRule": 2, "lbOutbound": 1, "probe": 1}
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
    assert public["dips"] == [
        {"ip": "192.168.0.2", "providerAddress": "10.10.56.11"},
        {"ip": "192.168.0.3", "providerAddress": "10.10.56.12"},
        {"ip": "192.168.0.4", "providerAddress": "10.10.56.11"},
    ]


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
