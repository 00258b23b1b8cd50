"""A NIC namespace read over netlink (no process) gives the repair what ``ip -j``/``tc -j``
give: the same links, addresses, default routes and token bucket."""

from __future__ import annotations

from typing import Any

from controller.agent.linux.observe import NamespaceView, observe
from controller.agent.linux.runner import Dump, Runner
from tests.agent.netlab import Lab, sh


def read(view: NamespaceView) -> dict[str, Any]:
    """What the repair reads of a NIC namespace."""
    return {
        "links": {
            name: (view.kind(name), view.up(name), link.get("address"), view.addresses(name))
            for name, link in view.links.items()
        },
        "defaults": [
            (r.get("gateway"), r.get("dev")) for r in view.routes if r["dst"] == "default"
        ],
        "defaults6": [
            (r.get("gateway"), r.get("dev")) for r in view.routes6 if r["dst"] == "default"
        ],
        "qdiscs": {
            dev: (q["kind"], q.get("options", {}).get("rate")) for dev, q in view.qdiscs.items()
        },
    }


async def test_a_nic_namespace_read_over_netlink_is_what_the_tools_list(lab: Lab) -> None:
    nic = lab.namespace("nic")
    sh("ip", "-n", nic, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
    sh("ip", "-n", nic, "link", "set", "eth0", "address", "02:aa:00:00:0b:01")
    sh("ip", "-n", nic, "addr", "add", "10.1.0.10/24", "dev", "eth0")
    sh("ip", "-n", nic, "addr", "add", "2001:db8:5::10/64", "dev", "eth0", "nodad")
    sh("ip", "-n", nic, "link", "set", "eth0", "up")
    sh("ip", "-n", nic, "route", "replace", "default", "via", "10.1.0.1", "dev", "eth0", "onlink")
    sh("ip", "-n", nic, "-6", "route", "replace", "default", "via", "2001:db8:5::1", "dev", "eth0",
       "onlink")  # fmt: skip
    sh("tc", "-n", nic, "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "20mbit",
       "burst", "32768", "latency", "50ms")  # fmt: skip
    views = []
    for netlink in (True, False):
        runner = Runner(use_netlink=netlink)
        views.append((await observe(runner, [], [nic], [nic])).views[nic])
        await runner.close()
    over_netlink, listed = (read(view) for view in views)
    assert over_netlink == listed
    assert over_netlink["qdiscs"]["eth0"] == ("tbf", 2_500_000)
    assert over_netlink["links"]["eth0"][0] == "veth"
    assert over_netlink["defaults6"] == [("2001:db8:5::1", "eth0")]


class DeletingFirst(Runner):
    """Deletes a NIC namespace just before reading it, as an apply may meanwhile."""

    def __init__(self, doomed: str, *, use_netlink: bool) -> None:
        super().__init__(use_netlink=use_netlink)
        self.doomed = doomed

    async def dump(self, netns: str, ipv6: bool) -> Dump:
        if netns == self.doomed:
            sh("ip", "netns", "del", netns)
        return await super().dump(netns, ipv6)

    async def json_batch(self, *args: Any, **kwargs: Any) -> Any:
        if args[1] == self.doomed:
            sh("ip", "netns", "del", self.doomed, check=False)
        return await super().json_batch(*args, **kwargs)


async def test_a_nic_namespace_deleted_while_it_is_read_is_absent(lab: Lab) -> None:
    """A full read racing the delete of a NIC namespace it listed finds it gone; it raised,
    and the agent stopped."""
    for netlink in (True, False):
        kept, doomed = lab.namespace(f"kept{int(netlink)}"), lab.namespace(f"doomed{int(netlink)}")
        runner = DeletingFirst(doomed, use_netlink=netlink)
        try:
            observed = await observe(runner, [], [kept, doomed])
        finally:
            await runner.close()
        assert kept in observed.namespaces
        assert kept in observed.views
        assert doomed not in observed.namespaces
        assert doomed not in observed.views
