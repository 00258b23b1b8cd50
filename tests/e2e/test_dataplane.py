"""End to end: packets between endpoint namespaces flow, or are dropped, exactly as the NBI
says, on three simulated hosts each run by a real ``sdnc agent``.

The tests share one deployment (see conftest) and run in file order: the last ones create and
delete an endpoint and restart an agent. Timings (PUT of a new endpoint to its first ping, ACL
change to enforcement) are recorded and printed at the end of the run.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import RESYNC_INTERVAL, Deployment
from tests.e2e.fabric import LATE, QOS_MBPS, WEB_ACL
from tests.e2e.netns import in_ns, ip_json, link_stats, links, namespaces, ping, run
from tests.e2e.probes import (
    connections,
    connects,
    first_ping,
    first_time,
    iperf_mbps,
    listening,
    note,
    ping_result,
    pinging,
    probe_time,
    record,
)
from tests.support.bodies import acl_rule_properties

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.slow,
    pytest.mark.dataplane("bridge", "tc", "nft", "nsenter", "ping", "nc", "ss", "iperf3"),
]

BLUE_A, BLUE_B, BLUE_C, NEW = "10.20.1.10", "10.20.1.20", "10.20.2.30", LATE.ip
# An ACL change must be enforced within this (the bound).
ENFORCEMENT_BOUND = 1.0
# Packets a ping (every 10 ms) may lose while an agent is killed and restarted: none, since
# the kernel keeps forwarding and a restarted agent must not touch what is right.
MAX_LOST_ACROSS_RESTART = 0
QOS_TOLERANCE = 0.15


def mac(bare: str) -> str:
    return ":".join(bare[i : i + 2] for i in range(0, 12, 2)).lower()


def test_same_subnet_ping_across_hosts_goes_through_vxlan(deployment: Deployment) -> None:
    d = deployment
    vx = f"vx{d.vsid('blue', 'web')}"
    on_1, on_2 = d.router_ns(1, "blue"), d.router_ns(2, "blue")
    before = link_stats(on_1, vx), link_stats(on_2, vx)

    assert ping(d.endpoint_ns("blue-a"), BLUE_B, count=5)
    assert ping(d.endpoint_ns("blue-b"), BLUE_A, count=5)

    after = link_stats(on_1, vx), link_stats(on_2, vx)
    # 10 echo requests and 10 replies each way over the VNI of the subnet.
    assert after[0]["tx"] - before[0]["tx"] >= 10, (before, after)
    assert after[0]["rx"] - before[0]["rx"] >= 10, (before, after)
    assert after[1]["tx"] - before[1]["tx"] >= 10, (before, after)
    assert after[1]["rx"] - before[1]["rx"] >= 10, (before, after)


def test_subnets_of_one_virtual_network_route_to_each_other(deployment: Deployment) -> None:
    d = deployment
    vx_app = f"vx{d.vsid('blue', 'app')}"
    before = link_stats(d.router_ns(1, "blue"), vx_app)

    assert ping(d.endpoint_ns("blue-a"), BLUE_C, count=3)  # web on host 1 -> app on host 3
    assert ping(d.endpoint_ns("blue-c"), BLUE_B, count=3)  # app on host 3 -> web on host 2

    # Routed on host 1 into the app subnet: out through the app subnet's VNI.
    assert link_stats(d.router_ns(1, "blue"), vx_app)["tx"] - before["tx"] >= 3


def test_a_virtual_network_with_the_same_prefixes_is_isolated(deployment: Deployment) -> None:
    d = deployment
    red_a, blue_a = d.endpoint_ns("red-a"), d.endpoint_ns("blue-a")
    # red works on its own: red-a reaches red-b at the address blue-b also has.
    assert ping(red_a, BLUE_B, count=2)
    # blue-c's address exists only in blue.
    assert not ping(red_a, BLUE_C, count=2, wait=0.5)
    with listening(d.endpoint_ns("blue-b"), [8080]) as listener:
        assert connects(blue_a, BLUE_B, 8080)
        # The same address in red is red-b, which does not listen.
        assert not connects(red_a, BLUE_B, 8080)
        accepted = connections(listener)
    assert accepted == [f"8080 {BLUE_A}"]


def _time_to(d: Deployment, port: int, *, connected: bool, action: str) -> float:
    """Change rule deny-http to ``action`` and measure when connecting to blue-b:``port``
    from blue-a starts to succeed (``connected``) or to fail."""
    probe = first_time(d.endpoint_ns("blue-a"), BLUE_B, port, connected=connected)
    time.sleep(0.3)  # the probe is running
    start = time.monotonic()
    d.api.put(
        f"{WEB_ACL}/aclRules/deny-http",
        {"properties": acl_rule_properties(110, destinationPortRange="80", action=action)},
        wait=True,
    )
    record(f"ACL change (rule -> {action}): PUT ?wait=applied answered", time.monotonic() - start)
    enforced = probe_time(probe)
    assert enforced is not None, f"port {port} did not become {'open' if connected else 'closed'}"
    elapsed = max(0.0, enforced - start)
    record(f"ACL change (rule -> {action}): PUT to enforcement", elapsed)
    return elapsed


def test_an_acl_allows_443_denies_80_and_a_change_applies_within_a_second(
    deployment: Deployment,
) -> None:
    d = deployment
    client = d.endpoint_ns("blue-a")
    with listening(d.endpoint_ns("blue-b"), [443, 80]):
        assert connects(client, BLUE_B, 443)
        assert not connects(client, BLUE_B, 80)
        # The ACL is blue-b's only: from blue-b, nothing of it applies outbound to blue-a.
        with listening(client, [80]):
            assert connects(d.endpoint_ns("blue-b"), BLUE_A, 80)

        assert _time_to(d, 80, connected=True, action="Allow") < ENFORCEMENT_BOUND
        assert connects(client, BLUE_B, 443)

        assert _time_to(d, 80, connected=False, action="Deny") < ENFORCEMENT_BOUND
        assert connects(client, BLUE_B, 443)
        assert not connects(client, BLUE_B, 80)


def test_outbound_maximum_caps_an_endpoint_at_50_mbps(deployment: Deployment) -> None:
    d = deployment
    capped = iperf_mbps(d.endpoint_ns("blue-a"), BLUE_A, d.endpoint_ns("blue-c"))
    note(f"iperf3 from an endpoint with outboundMaximumMbps {QOS_MBPS}", f"{capped:.1f} Mbit/s")
    assert QOS_MBPS * (1 - QOS_TOLERANCE) <= capped <= QOS_MBPS * (1 + QOS_TOLERANCE), capped
    # Toward blue-c (no inbound cap) the same path is much faster: the cap is what limits.
    uncapped = iperf_mbps(d.endpoint_ns("blue-c"), BLUE_C, d.endpoint_ns("blue-a"))
    assert uncapped > 2 * QOS_MBPS, uncapped


def _mapped(d: Deployment, host: int) -> tuple[bool, bool]:
    """Whether host ``host`` holds the neighbour entry and the VXLAN FDB entry of LATE."""
    vsid = d.vsid("blue", "web")
    namespace = d.router_ns(host, "blue")
    neighbours = ip_json(namespace, "neigh", "show", "dev", f"br{vsid}")
    neighbour = any(n.get("dst") == NEW and n.get("lladdr") == mac(LATE.mac) for n in neighbours)
    fdb = ip_json(namespace, "bridge", "fdb", "show", "dev", f"vx{vsid}")
    provider = d.net.hosts[LATE.host - 1].provider_address
    forwarded = any(e.get("mac") == mac(LATE.mac) and e.get("dst") == provider for e in fdb)
    return neighbour, forwarded


def test_a_new_endpoint_pings_soon_and_deleting_it_removes_it_everywhere(
    deployment: Deployment,
) -> None:
    d = deployment
    start = time.monotonic()
    created = d.api.put(LATE.path, LATE.body())
    namespace = d.tenants.nics[LATE.name] = str(created["instanceId"])
    pinged = first_ping(namespace, BLUE_A)
    record("new endpoint: PUT to first successful ping", pinged - start)
    assert ping(d.endpoint_ns("blue-b"), NEW, count=2)
    others = [h for h in range(1, len(d.net.hosts) + 1) if h != LATE.host]
    for host in others:
        assert _mapped(d, host) == (True, True), host

    d.api.delete(LATE.path, wait=True)

    assert namespace not in namespaces()
    for host in others:
        assert _mapped(d, host) == (False, False), host
    veth = f"s{namespace.replace('-', '')[:12]}"
    assert veth not in links(d.router_ns(LATE.host, "blue"))
    assert not ping(d.endpoint_ns("blue-a"), NEW, count=2, wait=0.5)


def test_drift_is_repaired_on_the_next_resync(deployment: Deployment) -> None:
    d = deployment
    blue_b = d.endpoint_ns("blue-b")
    veth = f"s{blue_b.replace('-', '')[:12]}"
    router = d.router_ns(2, "blue")
    start = time.monotonic()
    run("ip", "-n", router, "link", "delete", veth)  # by hand, behind the agent's back
    first_ping(d.endpoint_ns("blue-a"), BLUE_B, within=RESYNC_INTERVAL + 5)
    record("drift (a veth deleted by hand) repaired", time.monotonic() - start)
    assert veth in links(router)


def _kernel_state(d: Deployment, host: int) -> dict[str, object]:
    """Links (with ifindex: a recreated link differs) of a host's namespaces, and its
    rulesets with their rules' handles (a reloaded ruleset gets new ones) but without the
    counters' values (traffic moves those)."""
    spaces = [d.router_ns(host, "blue"), d.router_ns(host, "red"), d.endpoint_ns("blue-b"),
              d.endpoint_ns("red-b")]  # fmt: skip
    state: dict[str, object] = {ns: links(ns) for ns in spaces}
    for ns in spaces[:2]:
        state[f"nft {ns}"] = in_ns(ns, "nft", "-s", "-a", "list", "ruleset")
    return state


def test_killing_and_restarting_an_agent_leaves_traffic_alone(deployment: Deployment) -> None:
    d = deployment
    agent = d.agents[2]
    before = _kernel_state(d, 2)
    count, interval = 1500, 0.01  # 15 s of ping from host 1 to host 2
    with pinging(d.endpoint_ns("blue-a"), BLUE_B, count=count, interval=interval) as pinger:
        time.sleep(1.0)
        agent.kill()
        time.sleep(1.0)
        offset = agent.log_size()
        agent.start()
        deadline = time.monotonic() + 12
        # Converged: reconciled on start and applied what the controller sent on reconnecting.
        while [why for why, _ in agent.changes(offset)][:2] != ["start", "apply"]:
            assert pinger.poll() is None, "the ping ended before the agent converged"
            assert time.monotonic() < deadline, "the restarted agent did not converge"
            time.sleep(0.1)
        sent, received = ping_result(pinger)
    print(f"ping across the restart: {sent} sent, {received} received")
    print(f"the restarted agent logged:\n{agent.log_since(offset)}")
    assert sent == count
    assert sent - received <= MAX_LOST_ACROSS_RESTART, (sent, received)
    # Nothing was changed, and the kernel agrees.
    assert [n for _, n in agent.changes(offset)] == [0] * len(agent.changes(offset)), (
        agent.log_since(offset)
    )
    assert _kernel_state(d, 2) == before
    d.api.wait_status(["/servers/host2", "/networkInterfaces/blue-b"], within=10)
