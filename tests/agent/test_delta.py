"""A delta apply and a full reconcile from scratch leave the kernel in the same state.

One host is built whole, then changed by a series of deltas (endpoints added and removed, an
address and a cap changed, ACL rules and an endpoint's ACLs changed, remote endpoints added,
moved and removed, a route table added and changed; IPv4 and IPv6 ones: the host's NICs are
dual-stack), each applied in place against the agent's model. The kernel is read back;
then every namespace is deleted and a fresh agent builds the final objects from nothing with a
full reconcile; the kernel is read again. Both readings must be equal."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from controller.agent.linux.changes import Changes
from controller.agent.linux.dataplane import LinuxDataplane
from controller.agent.linux.kernel import Result
from controller.agent.linux.plan import HostPlan, router_name
from controller.agent.linux.runner import Runner
from tests.agent.netlab import Lab, Objects, new_id, sh
from tests.support.kernel_state import differences, host_state
from tests.support.traffic import reach, serving

pytestmark = pytest.mark.dataplane("bridge", "tc", "nft")
VSID = 5201
VSID6 = 5202  # the virtual network's IPv6 subnet
ACL = new_id()


def rule(port: str, **extra: Any) -> dict[str, Any]:
    return {
        "acl": ACL, "type": "Inbound", "action": "Allow", "priority": 100, "protocol": "TCP",
        "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*",
        "destinationPortRange": port,
    } | extra  # fmt: skip


def route(prefix: str, kind: str, hop: str | None = None) -> dict[str, Any]:
    return {"addressPrefix": prefix, "nextHopType": kind, "nextHopIpAddress": hop}


def guarded_endpoint(lab: Lab, mac: str) -> tuple[str, Objects, str, str]:
    """A host with one endpoint (10.1.0.10, ``mac``) behind an ACL letting TCP 80 in: the
    host's namespace, the objects, the virtual network's and the NIC's ids."""
    host, address = lab.host(lab.underlay(), 1)
    vnet, nic = new_id(), new_id()
    lab.owners.append(nic)
    objects = Objects().host(address).network("sub", vnet, VSID)
    lab.owners.append(objects.server)
    objects.objects[f"acl/{ACL}"] = {"inboundDefaultAction": "Deny"}
    objects.objects["aclRule/web"] = rule("80")
    objects.endpoint("a", nic, mac, "10.1.0.10", vnet, VSID, acls=[ACL])
    return host, objects, vnet, nic


async def test_deltas_and_a_full_build_leave_the_same_kernel(lab: Lab) -> None:
    host, address = lab.host(lab.underlay(), 1)
    vnet = new_id()
    nics = [new_id() for _ in range(5)]
    lab.owners += nics
    objects = Objects().host(address).network("sub", vnet, VSID)
    objects.network("sub6", vnet, VSID6, "2001:db8:5202::/64")
    objects.objects["network/sub"]["routeTable"] = "rt"  # its object comes in a delta
    lab.owners.append(objects.server)
    objects.objects[f"acl/{ACL}"] = {"inboundDefaultAction": "Deny"}
    objects.objects["aclRule/web"] = rule("80")
    for i in range(3):
        objects.endpoint(f"e{i}", nics[i], f"02000000060{i}", f"10.1.0.{10 + i}", vnet, VSID,
                         acls=[ACL] if i else [])  # fmt: skip
    for i in (0, 2):  # dual-stack
        objects.endpoint(f"e{i}v6", nics[i], f"02000000060{i}", f"2001:db8:5202::{10 + i}",
                         vnet, VSID6, acls=[ACL] if i else [])  # fmt: skip
    objects.mapping("far", "020000000700", "10.1.0.99", vnet, VSID, "192.168.240.2")
    objects.mapping("far6", "020000000700", "2001:db8:5202::99", vnet, VSID6, "192.168.240.2")
    dataplane = LinuxDataplane("server", runner=Runner(host_netns=host))
    state = objects.objects

    async def change(upserts: dict[str, Any], deletes: tuple[str, ...] = ()) -> None:
        for key in deletes:
            del state[key]
        state.update(copy.deepcopy(upserts))
        assert await dataplane.apply(state, upserts, list(deletes)) == []
        assert dataplane.last is not None
        assert dataplane.last.kind == "delta", "applied in place, not by a full reconcile"

    assert await dataplane.apply(state, state, []) == []  # the first apply is a full one
    before = len(state)
    objects.endpoint("e3", nics[3], "020000000603", "10.1.0.13", vnet, VSID, acls=[ACL],
                     qos={"inboundMaximumMbps": 40, "outboundMaximumMbps": 30})  # fmt: skip
    objects.endpoint("e3b", nics[3], "020000000603", "10.1.0.23", vnet, VSID, acls=[ACL])
    objects.endpoint("e4", nics[4], "020000000604", "10.1.0.14", vnet, VSID)
    objects.endpoint("e4v6", nics[4], "020000000604", "2001:db8:5202::14", vnet, VSID6)
    added = dict(list(state.items())[before:])
    await change(added)
    await change({}, ("endpoint/e1",))  # removed
    await change({"aclRule/web": rule("443")})  # a rule changed
    v6 = rule("8080", sourceAddressPrefix="2001:db8:5202::/64", priority=120)
    await change({"aclRule/v6": v6})  # an IPv6 rule added
    await change({"aclRule/ssh": rule("22", priority=110)})  # a rule added
    await change({"endpoint/e0": state["endpoint/e0"] | {"acls": [ACL]}})  # ACL'd now
    await change({"endpoint/e4": state["endpoint/e4"] | {"ip": "10.1.0.24"}})  # readdressed
    await change({"endpoint/e4v6": state["endpoint/e4v6"] | {"ip": "2001:db8:5202::24"}})
    objects.endpoint("e3v6", nics[3], "020000000603", "2001:db8:5202::13", vnet, VSID6)
    await change({"endpoint/e3v6": state["endpoint/e3v6"]})  # dual-stack now
    await change({}, ("endpoint/e2v6",))  # IPv4 only again
    qos = {"inboundMaximumMbps": None, "outboundMaximumMbps": 25}
    await change({"endpoint/e3": state["endpoint/e3"] | {"qos": qos}})  # cap changed, removed
    await change({}, ("endpoint/e3b",))  # one of two ipConfigurations gone
    objects.mapping("near", "020000000701", "10.1.0.98", vnet, VSID, "192.168.240.3")
    await change({"mapping/near": state["mapping/near"]})
    await change({"mapping/far": state["mapping/far"] | {"providerAddress": "192.168.240.4"}})
    objects.mapping("near6", "020000000701", "2001:db8:5202::98", vnet, VSID6, "192.168.240.3")
    await change({"mapping/near6": state["mapping/near6"]})
    await change({"mapping/far6": state["mapping/far6"] | {"providerAddress": "192.168.240.4"}})
    await change({}, ("mapping/near",))
    await change({}, ("mapping/near6",))
    await change({}, ("aclRule/ssh",))
    routes = [
        route("10.9.0.0/16", "VirtualAppliance", "10.1.0.12"),  # a local appliance
        route("10.8.0.0/16", "VirtualAppliance", "10.1.0.99"),  # a remote one
        route("10.7.0.0/16", "None"),
        route("10.9.1.0/24", "VnetLocal"),
    ]
    await change({"routeTable/rt": {"routes": routes}})  # a route table arrives
    objects.endpoint("e5", new_id(), "020000000605", "10.1.0.15", vnet, VSID)
    lab.owners.append(state["endpoint/e5"]["nic"])
    await change({"endpoint/e5": state["endpoint/e5"]})  # an endpoint of its subnet comes
    await change({"routeTable/rt": {"routes": [*routes[1:], route("10.6.0.0/16", "Internet")]}})
    router = router_name(objects.server, vnet)
    assert "10.8.0.0/16 via 10.1.0.99 dev br5201" in sh("ip", "-n", router, "route", "show",
                                                       "table", str((1 << 24) + VSID))  # fmt: skip

    # The next full observe-and-repair finds nothing to change: not even the rulesets changed
    # in place are reloaded (which would reset their counters).
    repair = await dataplane.reconcile()
    assert (repair.kind, repair.changes, repair.failures) == ("full", 0, [])

    live = [n for n in nics if n != nics[1]] + [state["endpoint/e5"]["nic"]]
    assert nics[1] not in sh("ip", "netns", "list")
    in_place = host_state([router, *live])

    await dataplane.runner.close()  # the first agent is gone; its netlink sockets with it
    for name in [router, *live]:
        sh("ip", "netns", "del", name)
    # The kernel frees a deleted namespace's devices (and the VXLAN's VNI) in the background.
    for vsid in (VSID, VSID6):
        probe = ("ip", "-n", host, "link", "add", "probe", "type", "vxlan", "id", str(vsid))
        for _ in range(40):
            if sh(*probe, "dstport", "4789", check=False) == "" and "probe" in sh(
                "ip", "-n", host, "link"
            ):
                sh("ip", "-n", host, "link", "del", "probe")
                break
            await asyncio.sleep(0.25)
    fresh = LinuxDataplane("server", runner=Runner(host_netns=host))
    assert await fresh.apply(state, state, []) == []
    assert fresh.last is not None
    assert fresh.last.kind == "full"
    from_scratch = host_state([router, *live])
    found = differences(in_place, from_scratch)
    assert not found, "\n".join(found)
    await fresh.close()


async def test_a_delta_the_kernel_refuses_falls_back_to_a_full_reconcile(lab: Lab) -> None:
    host, address = lab.host(lab.underlay(), 1)
    vnet, first, second = new_id(), new_id(), new_id()
    lab.owners += [first, second]
    objects = Objects().host(address).network("sub", vnet, VSID)
    lab.owners.append(objects.server)
    objects.endpoint("a", first, "020000000800", "10.1.0.10", vnet, VSID)
    dataplane = LinuxDataplane("server", runner=Runner(host_netns=host))
    assert await dataplane.apply(objects.objects, objects.objects, []) == []

    # The model says the new NIC's namespace is not there; someone made it: creating it fails.
    sh("ip", "netns", "add", second)
    objects.endpoint("b", second, "020000000801", "10.1.0.11", vnet, VSID)
    upsert = {"endpoint/b": objects.objects["endpoint/b"]}
    assert await dataplane.apply(objects.objects, upsert, []) == []
    assert dataplane.last is not None
    assert dataplane.last.kind == "full", "the refused delta was repaired by a full reconcile"
    assert "10.1.0.11/24" in sh("ip", "-n", second, "addr", "show", "eth0")
    assert dataplane.model is not None  # the next change is a delta again
    del objects.objects["endpoint/b"]
    assert await dataplane.apply(objects.objects, {}, ["endpoint/b"]) == []
    assert dataplane.last.kind == "delta"
    assert second not in sh("ip", "netns", "list")
    # The listing after that in-place change runs after the apply: let it finish (a task
    # cancelled while starting its process would hold the event loop's shutdown).
    await dataplane.close()


async def test_a_listing_overtaken_by_an_apply_is_taken_again(lab: Lab) -> None:
    """The listing after an in-place change does not hold up the next apply; one made stale
    by it is not recorded (the next full repair would trust it), but taken again."""
    host, objects, vnet, _ = guarded_endpoint(lab, "020000000900")
    state = objects.objects
    dataplane = LinuxDataplane("server", runner=Runner(host_netns=host))
    assert await dataplane.apply(state, state, []) == []
    listings = dataplane.kernel.listings
    calls: list[set[str]] = []

    async def overtaken(routers: set[str]) -> dict[str, str | None]:
        listed = await listings(routers)
        calls.append(routers)
        if len(calls) == 1:  # another change lands while the first listing is under way
            state["aclRule/web"] = rule("443")
            assert await dataplane.apply(state, {"aclRule/web": state["aclRule/web"]}, []) == []
        return listed

    dataplane.kernel.listings = overtaken  # type: ignore[method-assign]
    state["aclRule/web"] = rule("8080")
    assert await dataplane.apply(state, {"aclRule/web": state["aclRule/web"]}, []) == []
    assert dataplane.last is not None
    assert dataplane.last.kind == "delta"
    await dataplane.settle()
    assert len(calls) == 2, "the stale listing was taken again"
    assert not dataplane.kernel.pending
    repair = await dataplane.reconcile()
    assert (repair.changes, repair.failures) == (0, []), "the recorded listing is the kernel's"
    assert "dport 443" in sh("ip", "netns", "exec", router_name(objects.server, vnet),
                             "nft", "list", "ruleset")  # fmt: skip
    await dataplane.close()


async def test_an_acl_change_is_enforced_at_once_and_its_old_rules_removed_after(
    lab: Lab,
) -> None:
    """A changed ACL's new rules go ahead of its old ones in a transaction that only adds
    (one that deletes waits in the kernel); packets meet the new rules from then on. The old
    rules, shadowed by the new default, go in the listing step after the apply."""
    host, objects, vnet, nic = guarded_endpoint(lab, "020000000B00")
    client = new_id()
    lab.owners.append(client)
    objects.endpoint("b", client, "020000000B01", "10.1.0.11", vnet, VSID)
    state = objects.objects
    dataplane = LinuxDataplane("server", runner=Runner(host_netns=host))
    assert await dataplane.apply(state, state, []) == []
    router = router_name(objects.server, vnet)
    chain = f"acl_{ACL.replace('-', '')}_in"

    def rules() -> list[str]:
        listed = sh("ip", "netns", "exec", router, "nft", "-s", "list", "chain", "inet", "sdnc",
                    chain)  # fmt: skip
        return [line.strip() for line in listed.splitlines() if "counter" in line]

    with serving(nic, 80, 443):
        assert reach(client, "10.1.0.10", 80) == "connected"
        assert reach(client, "10.1.0.10", 443) == "dropped"
        transactions = dataplane.runner.nft
        scripts: list[str] = []

        async def recorded(netns: str | None, script: str, *, stateless: bool = False) -> str:
            scripts.append(script)
            return await transactions(netns, script, stateless=stateless)

        dataplane.runner.nft = recorded  # type: ignore[method-assign]
        state["aclRule/web"] = rule("443")
        assert await dataplane.apply(state, {"aclRule/web": state["aclRule/web"]}, []) == []
        assert scripts, "one transaction"
        assert all(line.startswith("insert rule") for line in scripts[0].splitlines())
        allow_443, allow_80, deny = (
            "tcp dport 443 counter return",
            "tcp dport 80 counter return",
            "counter drop",
        )
        assert rules() == [allow_443, deny, allow_80, deny], "the old ones, shadowed"
        assert reach(client, "10.1.0.10", 443) == "connected", "the new rule holds at once"
        assert reach(client, "10.1.0.10", 80) == "dropped", "the old one is never reached"
        await dataplane.settle()
        assert rules() == [allow_443, deny]
        assert reach(client, "10.1.0.10", 443) == "connected"
    repair = await dataplane.reconcile()
    assert (repair.changes, repair.failures) == (0, []), "the tidied ruleset is the whole one"
    await dataplane.close()


async def test_a_resync_overtaken_by_applies_on_every_read_is_deferred(lab: Lab) -> None:
    """Applies arriving during each of its reads never wait for the resync: it gives up,
    holding nothing up, and the next one, undisturbed, finds the host right."""
    host, objects, vnet, _ = guarded_endpoint(lab, "020000000C00")
    state = objects.objects
    dataplane = LinuxDataplane("server", runner=Runner(host_netns=host))
    assert await dataplane.apply(state, state, []) == []
    observe = dataplane.kernel.observe
    ports = iter(range(8100, 8200))

    async def overtaken(*args: Any) -> Any:
        observed = await observe(*args)
        assert not dataplane._lock.locked(), "the resync read holding up applies"
        state["aclRule/web"] = rule(str(next(ports)))
        assert await dataplane.apply(state, {"aclRule/web": state["aclRule/web"]}, []) == []
        return observed

    dataplane.kernel.observe = overtaken  # type: ignore[method-assign]
    deferred = await dataplane.reconcile()
    assert (deferred.kind, deferred.changes, dataplane.held) == ("deferred", 0, 0.0)
    dataplane.kernel.observe = observe  # type: ignore[method-assign]
    repair = await dataplane.reconcile()
    assert (repair.kind, repair.changes, repair.failures) == ("full", 0, [])
    assert "dport 8102" in sh("ip", "netns", "exec", router_name(objects.server, vnet),
                              "nft", "list", "ruleset")  # fmt: skip
    await dataplane.close()


async def test_a_resync_holds_up_applies_only_while_it_changes_the_kernel(lab: Lab) -> None:
    """Reading the host and computing what differs run with applies free to go; a drift
    found is repaired holding them up, and a host that is right holds them up for nothing."""
    host, address = lab.host(lab.underlay(), 1)
    vnet, nic = new_id(), new_id()
    lab.owners.append(nic)
    objects = Objects().host(address).network("sub", vnet, VSID)
    lab.owners.append(objects.server)
    objects.endpoint("a", nic, "020000000A00", "10.1.0.10", vnet, VSID)
    dataplane = LinuxDataplane("server", runner=Runner(host_netns=host))
    assert await dataplane.apply(objects.objects, objects.objects, []) == []
    changes, execute = dataplane.kernel.changes, dataplane.kernel.execute
    made: list[int] = []

    async def computed(*args: Any) -> Changes:
        assert not dataplane._lock.locked(), "computing the difference held up applies"
        found = await changes(*args)
        assert not dataplane._lock.locked()
        return found

    async def executed(plan: HostPlan, owned: set[str], found: Changes) -> Result:
        assert dataplane._lock.locked(), "changing the kernel without holding up applies"
        made.append(found.count)
        return await execute(plan, owned, found)

    dataplane.kernel.changes = computed  # type: ignore[method-assign]
    dataplane.kernel.execute = executed  # type: ignore[method-assign]
    router = router_name(objects.server, vnet)
    sh("ip", "-n", router, "route", "del", "10.1.0.10/32")  # drift
    assert (await dataplane.reconcile()).changes == 1
    assert (await dataplane.reconcile()).changes == 0
    assert made == [1, 0]
    assert "10.1.0.10" in sh("ip", "-n", router, "route", "show")
    await dataplane.close()
