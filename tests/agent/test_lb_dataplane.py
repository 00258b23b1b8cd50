"""Load balancing through the agent's data plane (``LinuxDataplane``), with real packets: a host
with a client endpoint, two DIPs and a NIC with a public IP in one virtual network, an
external namespace on the underlay, and the objects a controller sends for a load-balancing
rule, an outbound NAT rule and a public IP.

* a VIP is balanced at the client's host (east-west), each DIP sees the client's address;
* a DIP reaching its own VIP succeeds, also when the flow lands on itself (hairpin);
* pool members leave as the VIP from their own block of source ports, the public IP's NIC as
  its public IP, and an endpoint with neither cannot leave at all;
* a DIP leaving the pool is a delta: a connection held to it keeps echoing, new ones avoid it.
"""

from __future__ import annotations

import contextlib
import copy
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from controller.agent.linux.dataplane import LinuxDataplane
from controller.agent.linux.runner import Runner
from controller.policy import slots
from controller.policy.flow_hash import host_choice
from controller.policy.objects.lb import port_blocks
from tests.agent.netlab import Lab, Objects, new_id, sh
from tests.support.processes import stop_process
from tests.support.traffic import ask, echoes, hold, whoami

pytestmark = pytest.mark.dataplane("nft")

VSID = 5301
VIP = "203.0.113.10"
PUBLIC = "203.0.113.30"
CLIENT, DIP1, DIP2, NAMED = "10.1.0.10", "10.1.0.11", "10.1.0.12", "10.1.0.13"
EXTERNAL = "192.168.240.100"


# Sends one datagram naming its sender (argv[3]) to argv[1]:argv[2].
SEND = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
"""
# Prints "<payload> <source address> <source port>" for each datagram, until stdin closes.
RECEIVE = """
import select, socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    ready, _, _ = select.select([sock, sys.stdin], [], [])
    if sys.stdin in ready:
        break
    data, (address, port) = sock.recvfrom(100)
    print(data.decode(), address, port, flush=True)
"""


@contextlib.contextmanager
def datagrams(namespace: str, port: int) -> Iterator[list[tuple[str, tuple[str, int]]]]:
    """What arrives at ``namespace`` on UDP ``port`` while inside: (payload, (source address,
    source port)), filled in on exit."""
    argv = ["ip", "netns", "exec", namespace, sys.executable, "-c", RECEIVE, str(port)]
    receiver = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    arrived: list[tuple[str, tuple[str, int]]] = []
    try:
        assert receiver.stdout is not None
        assert receiver.stdin is not None
        assert receiver.stdout.readline().strip() == "ready"
        yield arrived
        time.sleep(0.3)
        receiver.stdin.close()
        for line in receiver.stdout:
            payload, address, source_port = line.split()
            arrived.append((payload, (address, int(source_port))))
    finally:
        stop_process(receiver)


def lb_rule(dips: list[str], vnet: str) -> dict[str, Any]:
    ordered = slots.ordered(dips)
    return {"vips": [VIP], "protocol": "Tcp", "frontendPort": 80, "backendPort": 8080,
            "distribution": "Default", "dips": ordered, "slots": slots.encoded(ordered),
            "virtualNetworks": [vnet]}  # fmt: skip


async def test_a_host_balances_hairpins_and_translates_what_leaves(lab: Lab) -> None:
    underlay = lab.underlay()
    host, address = lab.host(underlay, 1)
    external, _ = lab.host(underlay, 100)  # a client out on the underlay
    sh("ip", "-n", host, "route", "add", "default", "via", EXTERNAL)
    vnet = new_id()
    objects = Objects().host(address).network("sub", vnet, VSID)
    lab.owners.append(objects.server)
    nics = {}
    for index, ip in enumerate((CLIENT, DIP1, DIP2, NAMED)):
        nics[ip] = new_id()
        lab.owners.append(nics[ip])
        objects.endpoint(f"e{index}", nics[ip], f"0200000053{index:02x}", ip, vnet, VSID)
    state = objects.objects
    state["lbRule/web"] = lb_rule([DIP1, DIP2], vnet)
    blocks = port_blocks({ip: {"providerAddress": address, "vsid": VSID} for ip in (DIP1, DIP2)})
    state["lbOutbound/out"] = {"vips": [VIP], "protocol": "All", "portBlocks": blocks,
                               "virtualNetworks": [vnet]}  # fmt: skip
    state["publicIp/pip"] = {"publicIPAddress": PUBLIC, "privateIPAddress": NAMED,
                             "virtualNetwork": vnet}  # fmt: skip
    dataplane = LinuxDataplane("server", runner=Runner(host_netns=host))
    try:
        assert await dataplane.apply(copy.deepcopy(state), {}, []) == []
        with contextlib.ExitStack() as stack:
            for ip in (DIP1, DIP2):
                stack.enter_context(whoami(nics[ip], 8080))

            answers = ask(nics[CLIENT], VIP, 80, 40)
            counts = Counter(dip for dip, _ in answers)
            print("east-west, connections per DIP:", dict(counts))
            assert set(counts) == {DIP1, DIP2}
            assert {seen for _, seen in answers} == {CLIENT}, "the DIPs see the client"

            # The DIP of each flow is the one the connectivity check predicts for it. The
            # source ports are below the ephemeral range (32768-60999): the connections above
            # took ports of it, and one in TIME_WAIT would keep its port from being bound.
            ports = list(range(21000, 21012))
            landed = [dip for dip, _ in ask(nics[CLIENT], VIP, 80, source_ports=ports)]
            predicted = [host_choice([DIP1, DIP2], "Default", CLIENT, VIP, "tcp", port, 80)
                         for port in ports]  # fmt: skip
            assert landed == predicted

            hairpin = ask(nics[DIP1], VIP, 80, 20)
            assert all(dip for dip, _ in hairpin), "every connection to its own VIP answers"
            landed = [seen for dip, seen in hairpin if dip == DIP1]
            assert landed, "some of them land on itself"
            assert set(landed) == {VIP}, "landing on itself, it comes from the VIP"

            # Replies to the VIP would come back through a mux (the end-to-end test has
            # one): here what leaves is seen arriving, one datagram per sender.
            with datagrams(external, 9000) as arrived:
                for sender in (DIP1, DIP2, NAMED, CLIENT):
                    sh("ip", "netns", "exec", nics[sender], sys.executable, "-c", SEND,
                       EXTERNAL, "9000", sender)  # fmt: skip
            sources = dict(arrived)
            print("arrived from:", sources)
            for dip, block in ((DIP1, blocks[0]), (DIP2, blocks[1])):
                seen, port = sources[dip]
                assert seen == VIP, "a pool member leaves as the VIP"
                assert block["firstPort"] <= port <= block["lastPort"], "from its own block"
            assert sources[NAMED][0] == PUBLIC, "a NIC with a public IP leaves as it"
            assert CLIENT not in sources, "an endpoint with no NAT has no way out"

            held = hold(nics[CLIENT], VIP, 80)
            try:
                assert held.stdout is not None
                leaving = held.stdout.readline().split()[0]
                staying = DIP2 if leaving == DIP1 else DIP1
                state["lbRule/web"] = lb_rule([staying], vnet)
                upserts = {"lbRule/web": copy.deepcopy(state["lbRule/web"])}
                assert await dataplane.apply(copy.deepcopy(state), upserts, []) == []
                assert dataplane.last is not None
                assert dataplane.last.kind == "delta"
                assert echoes(held, "still here"), "the connection to the DIP that left"
                assert {dip for dip, _ in ask(nics[CLIENT], VIP, 80, 20)} == {staying}
            finally:
                stop_process(held)
        report = await dataplane.reconcile()
        assert report.changes == 0, "a full reconcile after the deltas changes nothing"
        # A host whose namespaces filter reverse paths strictly (a distribution's default):
        # the router's ports and bridges are set back to no filtering (an appliance's port,
        # having no address, would drop all it forwards; the mux's flows come from outside).
        router = next(iter(dataplane.tables))
        devices = ["all", "default", f"br{VSID}", *(p.veth for p in dataplane.model.ports.values())]
        for device in devices:
            sh(
                "ip",
                "netns",
                "exec",
                router,
                "sysctl",
                "-qw",
                f"net.ipv4.conf.{device}.rp_filter=1",
            )
        assert (await dataplane.reconcile()).changes > 0
        for device in devices:
            value = sh(
                "ip", "netns", "exec", router, "sysctl", "-n", f"net.ipv4.conf.{device}.rp_filter"
            )
            assert value.strip() == "0", device
    finally:
        await dataplane.close()
