"""The Linux data plane against the real kernel, in throwaway namespaces: a reconcile creates
what the plan says and nothing twice, deletions are complete, drift is repaired, and two
hosts' endpoints talk over VXLAN while virtual networks with the same prefix stay apart."""

from __future__ import annotations

import json
import time

import pytest

from controller.agent.linux.dataplane import LinuxDataplane
from controller.agent.linux.plan import router_name, veth_name
from controller.agent.linux.runner import Runner
from controller.agent.linux.state import StateDir
from tests.agent.netlab import Lab, Objects, new_id, sh
from tests.support.figures import Figures
from tests.support.tc import assert_capped, token_bucket

pytestmark = pytest.mark.dataplane("bridge", "tc", "nft", "ping")
VSID = 5001
# Seconds a reconcile that changes nothing may take on a loaded machine (it takes ~0.1 s).
NO_OP_BOUND = 30.0


def agent(lab: Lab, host: str, objects: Objects, state: StateDir | None = None) -> LinuxDataplane:
    lab.owners.append(objects.server)
    return LinuxDataplane("server", runner=Runner(host_netns=host), state_dir=state)


def nic(lab: Lab) -> str:
    found = new_id()
    lab.owners.append(found)
    return found


def links(netns: str) -> dict[str, dict[str, object]]:
    return {link["ifname"]: link for link in json.loads(sh("ip", "-n", netns, "-j", "-d", "link"))}


def ping(netns: str, address: str, count: int = 2) -> bool:
    done = sh("ip", "netns", "exec", netns, "ping", "-c", str(count), "-i", "0.2", "-W", "1",
              address, check=False)  # fmt: skip
    return f"{count} received" in done or f"{count} packets received" in done


def vxlan_packets(router: str, vxlan: str) -> tuple[int, int]:
    stats = json.loads(sh("ip", "-n", router, "-s", "-j", "link", "show", vxlan))[0]["stats64"]
    return stats["tx"]["packets"], stats["rx"]["packets"]


async def test_reconcile_creates_the_plan_then_changes_nothing(lab: Lab, figures: Figures) -> None:
    host, address = lab.host(lab.underlay(), 1)
    vnet = new_id()
    nics = [nic(lab) for _ in range(3)]
    objects = Objects().host(address).network("sub", vnet, VSID)
    for i, found in enumerate(nics):
        objects.endpoint(f"ep{i}", found, f"02000000010{i}", f"10.1.0.{10 + i}", vnet, VSID)
    objects.endpoint("ep0b", nics[0], "020000000100", "10.1.0.20", vnet, VSID)  # 2nd ipConfig
    objects.mapping("far", "020000000200", "10.1.0.99", vnet, VSID, "192.168.240.2")
    dataplane = agent(lab, host, objects)

    failures = await dataplane.apply(objects.objects, objects.objects, [])
    assert failures == []
    first = dataplane.last
    assert first is not None
    assert first.changes > 0
    router = router_name(objects.server, vnet)
    router_links = links(router)
    assert {"br5001", "vx5001", *(veth_name(n) for n in nics)} <= set(router_links)
    vxlan = router_links["vx5001"]["linkinfo"]["info_data"]  # type: ignore[index]
    assert (vxlan["id"], vxlan["local"], vxlan["port"]) == (VSID, address, 4789)
    assert "vx5001" not in links(host)
    addresses = json.loads(sh("ip", "-n", nics[0], "-j", "addr", "show", "eth0"))[0]
    assert {a["local"] for a in addresses["addr_info"] if a["family"] == "inet"} == {
        "10.1.0.10",
        "10.1.0.20",
    }
    assert addresses["address"] == "02:00:00:00:01:00"
    assert ping(nics[0], "10.1.0.11")  # two local endpoints, routed in the router namespace
    assert ping(nics[2], "10.1.0.1")  # the gateway
    fdb = json.loads(sh("bridge", "-n", router, "-j", "fdb", "show", "dev", "vx5001"))
    tunnels = {(e["mac"], e.get("dst")) for e in fdb if "self" in e["flags"]}
    assert ("02:00:00:00:02:00", "192.168.240.2") in tunnels

    assert await dataplane.apply(objects.objects, {}, []) == []
    assert dataplane.last is not None
    assert (dataplane.last.kind, dataplane.last.changes) == ("delta", 0), "an empty delta"
    started = time.monotonic()
    report = await dataplane.reconcile()
    elapsed = time.monotonic() - started
    assert (report.kind, report.changes) == ("full", 0), "a second full reconcile"
    # Reading the kernel and changing nothing is cheap; the bound only catches a reconcile
    # that hangs, the figure shows the cost.
    figures.record("no-op reconcile (3 endpoints, one router namespace)", elapsed, "s")
    assert elapsed < NO_OP_BOUND


async def test_deleting_an_endpoint_removes_everything_it_had(lab: Lab) -> None:
    host, address = lab.host(lab.underlay(), 1)
    vnet, keep, gone = new_id(), nic(lab), nic(lab)
    objects = Objects().host(address).network("sub", vnet, VSID)
    objects.endpoint("keep", keep, "020000000300", "10.1.0.10", vnet, VSID)
    objects.endpoint("gone", gone, "020000000301", "10.1.0.11", vnet, VSID)
    dataplane = agent(lab, host, objects)
    assert await dataplane.apply(objects.objects, objects.objects, []) == []
    router = router_name(objects.server, vnet)
    assert gone in sh("ip", "netns", "list")

    del objects.objects["endpoint/gone"]
    assert await dataplane.apply(objects.objects, {}, ["endpoint/gone"]) == []
    assert gone not in sh("ip", "netns", "list")
    assert veth_name(gone) not in links(router)
    assert "10.1.0.11" not in sh("ip", "-n", router, "route", "show")
    assert "02:00:00:00:03:01" not in sh("bridge", "-n", router, "fdb", "show")
    assert "02:00:00:00:03:01" not in sh("ip", "netns", "exec", router, "nft", "list", "ruleset")
    assert dataplane.owned == {keep}
    assert await dataplane.apply(objects.objects, {}, []) == []
    assert dataplane.last is not None
    assert dataplane.last.changes == 0

    assert await dataplane.apply({}, {}, list(objects.objects)) == []
    assert router not in sh("ip", "netns", "list")
    assert keep not in sh("ip", "netns", "list")


async def test_drift_is_repaired_and_a_restart_changes_nothing(lab: Lab, tmp_path: object) -> None:
    from pathlib import Path

    host, address = lab.host(lab.underlay(), 1)
    vnet, first, second = new_id(), nic(lab), nic(lab)
    objects = Objects().host(address).network("sub", vnet, VSID)
    objects.endpoint("a", first, "020000000400", "10.1.0.10", vnet, VSID)
    objects.endpoint("b", second, "020000000401", "10.1.0.11", vnet, VSID,
                     qos={"inboundMaximumMbps": 50, "outboundMaximumMbps": 20})  # fmt: skip
    state = StateDir(Path(str(tmp_path)) / "state")
    dataplane = agent(lab, host, objects, state)
    assert await dataplane.apply(objects.objects, objects.objects, []) == []
    router = router_name(objects.server, vnet)
    # Outbound: a token bucket on the endpoint's eth0; inbound: on its router-side veth.
    assert_capped(second, "eth0", 20)
    assert_capped(router, veth_name(second), 50)
    assert token_bucket(first, "eth0") is None
    assert token_bucket(router, veth_name(first)) is None

    sh("ip", "-n", router, "link", "del", veth_name(first))  # drift: the veth pair is gone
    sh("ip", "-n", router, "route", "del", "10.1.0.11/32")
    report = await dataplane.reconcile()
    assert report.failures == []
    assert report.changes > 0
    assert ping(first, "10.1.0.11")
    assert (await dataplane.reconcile()).changes == 0

    await dataplane.flush()  # as the daemon does before it records a revision
    restarted = LinuxDataplane(
        "server", runner=Runner(host_netns=host), state_dir=state, saved=state.load()
    )
    assert restarted.desired == objects.objects
    assert restarted.owned == {first, second}
    assert (await restarted.reconcile("start")).changes == 0

    # A changed cap replaces the bucket; a removed one removes it.
    objects.objects["endpoint/b"]["qos"] = {"inboundMaximumMbps": None, "outboundMaximumMbps": 35}
    upsert = {"endpoint/b": objects.objects["endpoint/b"]}
    assert await restarted.apply(objects.objects, upsert, []) == []
    assert_capped(second, "eth0", 35)
    assert token_bucket(router, veth_name(second)) is None


async def test_two_hosts_talk_over_vxlan_and_virtual_networks_stay_apart(lab: Lab) -> None:
    underlay = lab.underlay()
    (host_a, pa_a), (host_b, pa_b) = lab.host(underlay, 1), lab.host(underlay, 2)
    red, blue = new_id(), new_id()
    red_a, red_b, blue_b, blue_a = nic(lab), nic(lab), nic(lab), nic(lab)
    a = Objects().host(pa_a).network("r", red, 5101).network("b", blue, 5102)
    b = Objects().host(pa_b).network("r", red, 5101).network("b", blue, 5102)
    a.endpoint("ra", red_a, "020000000501", "10.1.0.10", red, 5101)
    a.endpoint("ba", blue_a, "020000000504", "10.1.0.11", blue, 5102)  # = red_b's address
    b.endpoint("rb", red_b, "020000000502", "10.1.0.11", red, 5101)
    b.endpoint("bb", blue_b, "020000000503", "10.1.0.12", blue, 5102)
    a.mapping("rb", "020000000502", "10.1.0.11", red, 5101, pa_b)
    a.mapping("bb", "020000000503", "10.1.0.12", blue, 5102, pa_b)
    b.mapping("ra", "020000000501", "10.1.0.10", red, 5101, pa_a)
    b.mapping("ba", "020000000504", "10.1.0.11", blue, 5102, pa_a)
    agent_a, agent_b = agent(lab, host_a, a), agent(lab, host_b, b)
    assert await agent_a.apply(a.objects, a.objects, []) == []
    assert await agent_b.apply(b.objects, b.objects, []) == []

    router_a = router_name(a.server, red)
    before = vxlan_packets(router_a, "vx5101")
    blue_rx = json.loads(sh("ip", "-n", blue_a, "-s", "-j", "link", "show", "eth0"))[0]
    assert ping(red_a, "10.1.0.11", count=3)  # red on A -> red on B, across VXLAN
    after = vxlan_packets(router_a, "vx5101")
    assert after[0] >= before[0] + 3
    assert after[1] >= before[1] + 3
    blue_after = json.loads(sh("ip", "-n", blue_a, "-s", "-j", "link", "show", "eth0"))[0]
    assert blue_after["stats64"]["rx"]["packets"] - blue_rx["stats64"]["rx"]["packets"] < 3
    assert ping(blue_b, "10.1.0.11")  # blue on B -> blue on A (same address as red on B)
    assert not ping(red_a, "10.1.0.12", count=1)  # blue's endpoint, same prefix: unreachable
    assert not ping(blue_b, "10.1.0.10", count=1)  # red's endpoint from blue


async def test_dual_stack_endpoints_route_ipv6_on_one_host(lab: Lab) -> None:
    host, address = lab.host(lab.underlay(), 1)
    vnet = new_id()
    nics = [nic(lab) for _ in range(3)]
    objects = Objects().host(address).network("sub", vnet, VSID)
    objects.network("web6", vnet, VSID + 1, "2001:db8:51::/64")
    objects.network("app6", vnet, VSID + 2, "2001:db8:52::/64")
    for i, found in enumerate(nics):
        mac = f"02000000030{i}"
        objects.endpoint(f"ep{i}", found, mac, f"10.1.0.{10 + i}", vnet, VSID)
        subnet, vsid = ("2001:db8:52", VSID + 2) if i == 2 else ("2001:db8:51", VSID + 1)
        objects.endpoint(f"ep{i}v6", found, mac, f"{subnet}::{10 + i}", vnet, vsid)
    dataplane = agent(lab, host, objects)
    assert await dataplane.apply(objects.objects, objects.objects, []) == []

    first, third = nics[0], nics[2]
    assert "2001:db8:51::10/64" in sh("ip", "-n", first, "-6", "addr", "show", "dev", "eth0")
    assert "default via 2001:db8:51::1" in sh("ip", "-n", first, "-6", "route")
    assert ping(first, "2001:db8:51::11")  # the same subnet: through the router namespace
    assert ping(first, "2001:db8:52::12")  # another subnet
    assert ping(third, "10.1.0.10")  # IPv4 as before
    # Nothing was left to repair: what was read back is what was planned, in both families.
    again = await dataplane.reconcile()
    assert (again.changes, again.failures) == (0, [])
    await dataplane.close()
