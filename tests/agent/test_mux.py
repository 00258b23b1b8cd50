"""The mux role with real packets: an external client on the underlay reaches VIPs through a mux
(``LinuxDataplane`` of a server that gets ``vipMap`` objects) and a host with two DIPs, a NIC
with a public IP, in one virtual network.

* connections to the VIP spread over both DIPs, each sees the client's own address, and the
  replies come straight from the host (the mux forwards one direction only);
* an inbound NAT rule reaches its one DIP; a public IP reaches its NIC;
* a pool member's connection out to the client arrives from the VIP and its replies come back
  through the mux (the VIP's source-port block of that DIP);
* the mux's plan: slots to marks, places kept by number; a DIP no vipMap places is reported.
"""

from __future__ import annotations

import contextlib
import copy
import subprocess
from collections import Counter
from typing import Any

import pytest

from controller.agent.linux.dataplane import LinuxDataplane
from controller.agent.linux.mux import MARK_BASE, MUX_DEVICE, Target, plan_mux
from controller.agent.linux.runner import Runner
from controller.policy import slots
from controller.policy.objects.lb import port_blocks
from tests.agent.netlab import Lab, Objects, new_id, sh
from tests.support.processes import stop_process
from tests.support.traffic import ask, echoes, hold, whoami

VSID = 5302
VIP = "203.0.113.20"
PUBLIC = "203.0.113.21"
DIP1, DIP2, NAMED = "10.1.0.11", "10.1.0.12", "10.1.0.13"
MACS = {DIP1: "02:00:00:00:54:01", DIP2: "02:00:00:00:54:02", NAMED: "02:00:00:00:54:03"}
CLIENT = "192.168.240.100"


def lb_objects(host_address: str, vnet: str, pool: list[str] | None = None) -> dict[str, Any]:
    """What a controller sends for a rule (80 -> 8080) over DIP1 and DIP2 (or ``pool``), an
    inbound NAT rule (2222 -> DIP1:8080), an outbound rule and a public IP (to NAMED) -- the
    hosts' and the mux's objects alike."""
    dips = slots.ordered(pool or [DIP1, DIP2])
    place = {"providerAddress": host_address, "vsid": VSID}
    return {
        "lbRule/web": {"vips": [VIP], "protocol": "Tcp", "frontendPort": 80,
                       "backendPort": 8080, "distribution": "Default", "dips": dips,
                       "slots": slots.encoded(dips), "virtualNetworks": [vnet]},
        "lbNat/ssh": {"vips": [VIP], "protocol": "Tcp", "frontendPort": 2222,
                      "backendPort": 8080, "dip": DIP1, "virtualNetworks": [vnet]},
        "lbOutbound/out": {"vips": [VIP], "protocol": "All", "virtualNetworks": [vnet],
                           "portBlocks": port_blocks({ip: place | {"mac": MACS[ip]}
                                                      for ip in dips})},
        "publicIp/pip": {"publicIPAddress": PUBLIC, "privateIPAddress": NAMED,
                         "virtualNetwork": vnet, "mac": MACS[NAMED]} | place,
        "vipMap/fe": {"vip": VIP, "dips": [{"ip": ip, "mac": MACS[ip]} | place
                                           for ip in slots.ordered({*dips, DIP1})]},  # NAT's
    }  # fmt: skip


def test_the_plan_marks_each_place_and_keeps_the_numbers() -> None:
    objects = lb_objects("198.18.0.2", "v")
    first = plan_mux(objects, {})
    assert first.problems == []
    assert sorted(first.targets.values()) == [0, 1, 2]
    (elements,) = first.tables.slots.values()
    mark = {d: f"{MARK_BASE + first.targets[Target('198.18.0.2', VSID, MACS[d])]:#x}"
            for d in (DIP1, DIP2)}  # fmt: skip
    assert {mark for _, mark in elements} == set(mark.values())
    assert first.tables.sets["natted"] == {f"{VIP} . tcp . 2222": mark[DIP1]}
    del objects["publicIp/pip"]
    again = plan_mux(objects, first.targets)
    assert all(again.targets[t] == first.targets[t] for t in again.targets)
    objects["vipMap/fe"]["dips"] = objects["vipMap/fe"]["dips"][:1]
    assert [key for key, _ in plan_mux(objects, {}).problems] == ["lbRule/web"]


def _held_to(client: str, dip: str) -> subprocess.Popen[str]:
    """A connection from ``client`` to the VIP held open, one that the mux sent to ``dip``."""
    for _ in range(30):  # each lands on ``dip`` with a chance of one half
        held = hold(client, VIP, 80)
        assert held.stdout is not None
        if held.stdout.readline().split()[0] == dip:
            return held
        stop_process(held)
    raise AssertionError(f"no connection to {VIP} landed on {dip}")


@pytest.mark.dataplane("nft")
async def test_an_external_client_reaches_the_vips_through_the_mux(lab: Lab) -> None:
    underlay = lab.underlay()
    host, host_address = lab.host(underlay, 1)
    mux, mux_address = lab.host(underlay, 9)
    client, _ = lab.host(underlay, 100)
    for prefix in (VIP, PUBLIC):
        sh("ip", "-n", client, "route", "add", prefix, "via", mux_address)
    sh("ip", "-n", host, "route", "add", "default", "via", CLIENT)
    vnet = new_id()
    objects = Objects().host(host_address).network("sub", vnet, VSID)
    lab.owners.append(objects.server)
    nics = {}
    for index, ip in enumerate((DIP1, DIP2, NAMED)):
        nics[ip] = new_id()
        lab.owners.append(nics[ip])
        objects.endpoint(f"e{index}", nics[ip], MACS[ip], ip, vnet, VSID)
    shared = lb_objects(host_address, vnet)
    host_objects = objects.objects | {k: v for k, v in shared.items() if "vipMap" not in k}
    mux_objects = {f"host/{new_id()}": {"providerAddress": mux_address}, **shared}
    hosting = LinuxDataplane("host", runner=Runner(host_netns=host))
    muxing = LinuxDataplane("mux", runner=Runner(host_netns=mux))
    try:
        assert await hosting.apply(copy.deepcopy(host_objects), {}, []) == []
        assert await muxing.apply(copy.deepcopy(mux_objects), {}, []) == []
        with contextlib.ExitStack() as stack:
            for ip in (DIP1, DIP2, NAMED):
                stack.enter_context(whoami(nics[ip], 8080))
            stack.enter_context(whoami(client, 9000))
            answers = ask(client, VIP, 80, 30)
            counts = Counter(dip for dip, _ in answers)
            print("through the mux, connections per DIP:", dict(counts))
            assert set(counts) == {DIP1, DIP2}
            assert {seen for _, seen in answers} == {CLIENT}, "each DIP sees the client"
            assert {dip for dip, _ in ask(client, VIP, 2222, 5)} == {DIP1}, "inbound NAT"
            assert ask(client, PUBLIC, 8080) == [(NAMED, CLIENT)], "the public IP, inbound"
            ((_, seen),) = ask(nics[DIP2], CLIENT, 9000)
            assert seen == VIP, "a pool member reaches the client as the VIP, and back"
            ((_, seen),) = ask(nics[NAMED], CLIENT, 9000)
            assert seen == PUBLIC, "the public IP, outbound"

            # DIP1 leaves the pool (the NAT rule keeps it placed, so its host still takes what
            # the mux sends to it): a connection held to it through the mux keeps going (the
            # mux remembers the flow, and still routes to where that DIP lives); new
            # connections avoid it.
            leaving, staying = DIP1, DIP2
            held = _held_to(client, leaving)
            try:
                # Flows the mux now remembers on the leaving DIP, by their source ports.
                # Below the ephemeral range, which the connections above drew from.
                ports = list(range(22100, 22120))
                gone = [p for p, (dip, _) in zip(ports, ask(client, VIP, 80, source_ports=ports),
                                                 strict=True) if dip == leaving]  # fmt: skip
                assert gone, "some of twenty flows hashed to each DIP"
                changed = lb_objects(host_address, vnet, pool=[staying])
                for dataplane, objects_now, vip_map in ((hosting, host_objects, False),
                                                        (muxing, mux_objects, True)):  # fmt: skip
                    upserts = {k: v for k, v in changed.items()
                               if k in ("lbRule/web", "lbOutbound/out")
                               or (vip_map and k == "vipMap/fe")}  # fmt: skip
                    objects_now.update(copy.deepcopy(upserts))
                    assert await dataplane.apply(copy.deepcopy(objects_now), upserts, []) == []
                assert echoes(held, "still here"), "the connection to the DIP that left"
                # ... as the mux remembered it: its flow still carries the mark of that DIP's
                # place (both DIPs live on one host here, so the host alone would keep it).
                mark = muxing.mux.targets[Target(host_address, VSID, MACS[leaving])]
                flows = sh(
                    "ip", "netns", "exec", mux, "nft", "list", "map", "ip", "sdnc_mux", "flows"
                )
                assert f": {MARK_BASE + mark:#010x}" in flows, flows
                assert {dip for dip, _ in ask(client, VIP, 80, 20)} == {staying}
                # A new connection that reuses a remembered flow's addresses and ports (a
                # client's ephemeral ports come round again within minutes) is a new flow:
                # its SYN is hashed afresh, not sent after the old one to the DIP that left.
                assert {dip for dip, _ in ask(client, VIP, 80, source_ports=gone)} == {staying}
            finally:
                stop_process(held)
        assert (await muxing.reconcile()).changes == 0
        sh("ip", "-n", mux, "link", "del", MUX_DEVICE)  # drift: the resync makes it again
        await muxing.reconcile()
        assert muxing.mux.failures == []
        with whoami(nics[DIP1], 8080), whoami(nics[DIP2], 8080):
            assert {dip for dip, _ in ask(client, VIP, 80, 10)} <= {DIP1, DIP2}
        # Torn down (``sdnc agent-teardown`` does this): found in the kernel and removed.
        fresh = LinuxDataplane("mux", runner=Runner(host_netns=mux))
        await fresh.mux.stop()
        await fresh.close()
        assert MUX_DEVICE not in sh("ip", "-n", mux, "link", "show")
        assert "fwmark" not in sh("ip", "-n", mux, "rule", "show")
        assert "sdnc_mux" not in sh("ip", "netns", "exec", mux, "nft", "list", "tables")
    finally:
        await muxing.close()
        await hosting.close()
        with contextlib.suppress(AssertionError):
            sh("ip", "-n", mux, "link", "del", "sdncmux")
