"""Who gets a route table: every host of the virtual network whose subnet uses it -- the hosts
of that subnet's endpoints route by it, and the host of an appliance it names (an endpoint of
another subnet, alone on its host) must know to forward for it."""

from __future__ import annotations

from controller.policy import Compiler, full_compile
from tests.policy.strategies import (
    ConfigWrite,
    NicWrite,
    ServerWrite,
    SubnetWrite,
    TableWrite,
    VnetWrite,
    World,
    subnet_ref,
)

HOSTS = ("Host-A", "Host-B", "Host-C")
ROUTE = ("ToAppliance", {"addressPrefix": "10.9.0.0/16", "nextHopType": "VirtualAppliance",
                         "nextHopIpAddress": "192.168.2.10"})  # fmt: skip


def _tables(compiler: Compiler, host: str) -> set[str]:
    return {key for key in compiler.snapshot(host) if key.startswith("routeTable/")}


def test_a_route_table_reaches_the_host_of_its_appliance_in_another_subnet() -> None:
    world = World()
    changes = [world.put_server(ServerWrite(h)) for h in HOSTS]
    changes += [world.report_address(h, f"10.10.56.{i + 11}") for i, h in enumerate(HOSTS)]
    changes.append(world.put_table(TableWrite("Nva", (ROUTE,))))
    subnets = (SubnetWrite("Front", 0, table="Nva"), SubnetWrite("Appliances", 1))
    changes.append(world.put_vnet(VnetWrite("Web", subnets)))
    changes.append(world.put_vnet(VnetWrite("Other", (SubnetWrite("Front", 2),))))
    placed = [
        ("Vm", "Host-A", subnet_ref("Web", "Front"), "192.168.0.10"),
        ("Nva", "Host-B", subnet_ref("Web", "Appliances"), "192.168.2.10"),
        ("Stranger", "Host-C", subnet_ref("Other", "Front"), "192.168.4.10"),
    ]
    for nic, host, subnet, ip in placed:
        config = ConfigWrite("IpConfig1", subnet, ip)
        changes.append(world.put_nic(NicWrite(nic, host, configs=(config,))))
    compiler = Compiler()
    compiler.load(changes, world.revision)
    ids = {h: world.instance_id(f"/servers/{h}") for h in HOSTS}
    wire = f"routeTable/{world.instance_id('/routeTables/Nva')}"
    assert _tables(compiler, ids["Host-A"]) == {wire}
    assert _tables(compiler, ids["Host-B"]) == {wire}  # the appliance's host
    assert _tables(compiler, ids["Host-C"]) == set()  # another virtual network's

    # Detached: it leaves both hosts, incrementally as a full compile has it.
    deltas = compiler.apply(world.put_vnet(VnetWrite("Web", (SubnetWrite("Front", 0), subnets[1]))))
    assert all(wire in deltas[ids[h]].deletes for h in ("Host-A", "Host-B"))
    assert {h: compiler.snapshot(h) for h in ids.values()} == {
        h: full_compile(world.documents(), world.revision).get(h, {}) for h in ids.values()
    }
