"""A NIC namespace read over netlink (no process) gives the repair what ``ip -j``/``tc -j``
give: the same links, addresses, default routes and token bucket."""

from __future__ import annotations

from typing import Any

from controller.agent.linux.observe import NamespaceView, observe
from controller.agent.linux.runner import Runner
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
