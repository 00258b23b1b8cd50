"""End to end: packets between endpoint namespaces flow, or are dropped, exactly as the NBI
says, on three simulated hosts each run by a real ``sdnc agent``.

The tests share one deployment (see conftest) and run in file order: the last ones create and
delete an endpoint and restart an agent. A denied connection is checked to be dropped by the
rule that denies it (no answer, its counter moved, the listener saw nothing), not refused.
Waits end on events (``?wait=applied``, the agent's log, replies counted); what they took is
recorded with the ``figures`` fixture and only bounded generously here.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment
from tests.e2e.fabric import (
    APPLIANCE,
    ENDPOINTS,
    LATE,
    QOS_MBPS,
    ROUTE_TABLE,
    WEB_ACL,
    Endpoint,
    blue_network,
    https_only_acl,
)
from tests.e2e.netns import in_ns, ip_json, link_stats, links, namespaces, ping, run
from tests.e2e.probes import (
    Listener,
    connects,
    first_ping,
    iperf_mbps,
    listening,
    pinging,
    probing_for,
    reach,
    wait_until,
)
from tests.support.bodies import acl, acl_rule, acl_rule_properties, route, route_table
from tests.support.figures import Figures
from tests.support.nbi import PS_HEADERS, url
from tests.support.nftables import rule_packets
from tests.support.tc import assert_capped

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.slow,
    pytest.mark.dataplane("bridge", "tc", "nft", "nsenter", "ping", "ss", "iperf3"),
]

BLUE_A, BLUE_B, BLUE_C, NEW = "10.20.1.10", "10.20.1.20", "10.20.2.30", LATE.ip
BLUE_A6, BLUE_B6, BLUE_C6 = "2001:db8:20:1::10", "2001:db8:20:1::20", "2001:db8:20:2::30"
# Generous bounds (seconds) for what is measured and recorded as a figure: an ACL change
# reaching the packets (the PUT's ?wait=applied timeout), a restarted agent converging, a
# resync repairing drift.
ENFORCEMENT_BOUND = 20.0
CONVERGENCE_BOUND = 60.0
REPAIR_BOUND = 60.0
# Of the pings (every 10 ms) across an agent's kill and restart, the share that may be lost
# before the test fails. None should be (the kernel keeps forwarding, and a restarted agent
# touches nothing that is right -- the kernel state is compared exactly); the count is a
# figure.
LOSS_BOUND = 0.01
# The measured rate of a capped endpoint, relative to its cap: it must not pass it by more
# than this; below, only a CPU-starved run falls short (the bucket itself is checked exactly).
QOS_OVER = 0.15
QOS_UNDER = 0.5


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
        listener.wait_accepted(8080, 1)
        # The same address in red is red-b, which answers that nothing listens there: the
        # connection went to red-b, and blue-b never saw it.
        assert reach(red_a, BLUE_B, 8080) == "refused"
        assert listener.accepted() == [f"8080 {BLUE_A}"]


def _assert_dropped_by_the_acl(
    d: Deployment, listener: Listener, client: str, port: int, address: str = BLUE_B
) -> None:
    """A connection from ``client`` to blue-b:``port`` (at ``address``) gets no answer
    (dropped, not refused), the listener there sees nothing, and the ACL's deny rule for the
    port counted it."""
    router, acl_id = d.router_ns(2, "blue"), d.api.instance_id(WEB_ACL)
    counted = rule_packets(router, acl_id, "inbound", port=port, verdict="drop")
    seen = listener.accepted(port)
    assert reach(client, address, port) == "dropped"
    assert rule_packets(router, acl_id, "inbound", port=port, verdict="drop") > counted
    assert listener.accepted(port) == seen


def _change_deny_http(d: Deployment, figures: Figures, action: str) -> None:
    """Change rule deny-http to ``action`` (with ?wait=applied) while a probe from blue-a
    watches blue-b:80; record when the probe saw the change, bound it generously."""
    wanted = "connected" if action == "Allow" else "dropped"
    with probing_for(d.endpoint_ns("blue-a"), BLUE_B, 80, wanted) as probe:
        start = time.monotonic()
        d.api.put(
            f"{WEB_ACL}/aclRules/deny-http",
            {"properties": acl_rule_properties(110, destinationPortRange="80", action=action)},
            wait=True,
        )
        answered = time.monotonic() - start
        enforced = max(0.0, probe.changed_at(ENFORCEMENT_BOUND) - start)
    figures.record(f"ACL rule -> {action}: PUT ?wait=applied answered", answered, "s")
    figures.record(f"ACL rule -> {action}: PUT to enforcement", enforced, "s")
    assert enforced < ENFORCEMENT_BOUND


def test_an_acl_allows_443_denies_80_and_a_change_applies_by_the_time_it_is_acknowledged(
    deployment: Deployment, figures: Figures
) -> None:
    d = deployment
    client = d.endpoint_ns("blue-a")
    with listening(d.endpoint_ns("blue-b"), [443, 80]) as listener:
        assert connects(client, BLUE_B, 443)
        _assert_dropped_by_the_acl(d, listener, client, 80)
        # The ACL is blue-b's only: from blue-b, nothing of it applies outbound to blue-a.
        with listening(client, [80]):
            assert connects(d.endpoint_ns("blue-b"), BLUE_A, 80)

        # Once the PUT says every host applied it, the packets follow it.
        _change_deny_http(d, figures, "Allow")
        assert connects(client, BLUE_B, 80)
        assert connects(client, BLUE_B, 443)

        _change_deny_http(d, figures, "Deny")
        _assert_dropped_by_the_acl(d, listener, client, 80)
        assert connects(client, BLUE_B, 443)


def test_dual_stack_endpoints_route_ipv6_through_vxlan_and_the_acl_filters_it(
    deployment: Deployment,
) -> None:
    d = deployment
    vx = f"vx{d.vsid('blue', 'web6')}"
    on_1 = d.router_ns(1, "blue")
    client = d.endpoint_ns("blue-a")
    before = link_stats(on_1, vx)

    assert ping(client, BLUE_B6, count=3)  # web6: host 1 -> host 2
    assert ping(d.endpoint_ns("blue-c"), BLUE_A6, count=3)  # app6 on host 3 -> web6 on host 1
    assert ping(client, BLUE_C6, count=1)

    after = link_stats(on_1, vx)
    # Out to blue-b and back over web6's VNI; blue-c's requests arrive on it too (the
    # replies leave host 1 by app6's VNI: routed there, as IPv4 is).
    assert after["tx"] - before["tx"] >= 3, (before, after)
    assert after["rx"] - before["rx"] >= 3 + 3, (before, after)
    # blue-b's ACL ("*" prefixes: both families) allows TCP 443 and drops TCP 80 over IPv6.
    with listening(d.endpoint_ns("blue-b"), [443, 80]) as listener:
        assert connects(client, BLUE_B6, 443)
        listener.wait_accepted(443, 1)
        assert listener.accepted(443)[-1] == f"443 {BLUE_A6}"
        _assert_dropped_by_the_acl(d, listener, client, 80, BLUE_B6)


# The ACL of blue-b while the connectivity check is compared with packets: inbound only TCP
# 443 from subnet web (default Deny: blue-c in subnet app is refused, pings are dropped),
# outbound TCP 8080 denied (default Permit).
STRICT_ACL = acl(
    acl_rule("web-https", 100, destinationPortRange="443", sourceAddressPrefix="10.20.1.0/24"),
    acl_rule("no-8080-out", 100, destinationPortRange="8080", action="Deny", type="Outbound"),
    inboundDefaultAction="Deny",
    outboundDefaultAction="Permit",
)
CHECKED_PORTS = (80, 443, 8080)


def _checked(d: Deployment, sender: Endpoint, receiver: Endpoint, port: int | None) -> str:
    """The connectivity check's verdict (Success/Failure) for a TCP connection to ``port``, or
    a ping when ``port`` is None."""
    config = {"tcpProtocolConfig": {"destinationPort": port}} if port else {}
    body = {
        "properties": {
            "senderIpAddress": sender.ip,
            "receiverIpAddress": receiver.ip,
            "senderVirtualNetwork": {"resourceRef": f"/virtualNetworks/{sender.vnet}"},
            "receiverVirtualNetwork": {"resourceRef": f"/virtualNetworks/{receiver.vnet}"},
            "protocol": "Tcp" if port else "Icmp",
            **config,
        }
    }
    answer = d.api.http.put(url("/diagnostics/connectivityCheck"), json=body, headers=PS_HEADERS)
    assert answer.status_code == 201, answer.text
    result_ref = answer.json()["properties"]["connectivityCheckResult"]["resourceRef"]
    return str(d.api.get(result_ref)["properties"]["result"]["status"])


def _compare_every_pair(d: Deployment) -> tuple[int, int]:
    """For every pair of endpoints of one virtual network, every checked port and ping: the
    check's verdict against the packets'. Returns (probes compared, of them Failure)."""
    compared = failures = 0
    with contextlib.ExitStack() as stack:
        for endpoint in ENDPOINTS:
            stack.enter_context(listening(d.endpoint_ns(endpoint.name), CHECKED_PORTS))
        for sender, receiver in itertools.permutations(ENDPOINTS, 2):
            if sender.vnet != receiver.vnet:
                continue
            client = d.endpoint_ns(sender.name)
            for port in (*CHECKED_PORTS, None):
                verdict = _checked(d, sender, receiver, port)
                if port is None:
                    real = "Success" if ping(client, receiver.ip, count=1) else "Failure"
                else:
                    outcome = reach(client, receiver.ip, port)
                    assert outcome in ("connected", "dropped"), (sender, receiver, port, outcome)
                    real = "Success" if outcome == "connected" else "Failure"
                what = f"{sender.name} -> {receiver.name} {port or 'ping'}"
                assert verdict == real, f"{what}: the check says {verdict}, packets {real}"
                compared += 1
                failures += verdict == "Failure"
    return compared, failures


def test_the_connectivity_check_predicts_every_pair_as_packets_go(
    deployment: Deployment, figures: Figures
) -> None:
    d = deployment
    d.api.put(WEB_ACL, https_only_acl(), wait=True)
    compared, failures = _compare_every_pair(d)
    d.api.put(WEB_ACL, STRICT_ACL, wait=True)
    try:
        strict_compared, strict_failures = _compare_every_pair(d)
    finally:
        d.api.put(WEB_ACL, https_only_acl(), wait=True)
    figures.record("connectivity checks compared with packets", compared + strict_compared)
    figures.record("of them Failure (dropped)", failures + strict_failures)
    assert failures >= 2, "the https-only ACL drops TCP 80 toward blue-b"
    assert strict_failures > failures, "the strict ACL drops more"


def test_outbound_maximum_caps_an_endpoint_at_50_mbps(
    deployment: Deployment, figures: Figures
) -> None:
    d = deployment
    # The cap asked for is the token bucket on blue-c's eth0, exactly.
    assert_capped(d.endpoint_ns("blue-c"), "eth0", QOS_MBPS)
    capped = iperf_mbps(d.endpoint_ns("blue-a"), BLUE_A, d.endpoint_ns("blue-c"))
    figures.record(f"iperf3 from an endpoint with outboundMaximumMbps {QOS_MBPS}", capped, "Mbit/s")
    assert QOS_MBPS * QOS_UNDER <= capped <= QOS_MBPS * (1 + QOS_OVER), capped
    # Toward blue-c (no inbound cap) the same path is much faster: the cap is what limits.
    uncapped = iperf_mbps(d.endpoint_ns("blue-c"), BLUE_C, d.endpoint_ns("blue-a"))
    figures.record("iperf3 toward that endpoint (no inbound cap)", uncapped, "Mbit/s")
    assert uncapped > 2 * QOS_MBPS, uncapped


def _appliance_forwards(namespace: str, on: bool) -> None:
    """The appliance's VM configuring itself: IP forwarding on or off."""
    in_ns(namespace, "sysctl", "-q", "-w", f"net.ipv4.ip_forward={int(on)}")


def test_a_route_table_sends_a_prefix_through_an_appliance_and_drops_another(
    deployment: Deployment, figures: Figures
) -> None:
    """Subnet web's route table: blue-c (subnet app, host 3) via the appliance blue-v
    (subnet app, host 2), blue-b None. From blue-a (host 1) the appliance is remote (over
    VXLAN), from blue-b (host 2) local; an appliance that does not forward breaks the path,
    one that does carries it; without the route table, delivery is direct again."""
    d = deployment
    blue_a, blue_b, blue_c = (d.endpoint_ns(n) for n in ("blue-a", "blue-b", "blue-c"))
    created = d.api.put(APPLIANCE.path, APPLIANCE.body(), wait=True)
    appliance = d.tenants.nics[APPLIANCE.name] = str(created["instanceId"])
    table = route_table(
        route("through", f"{BLUE_C}/32", next_hop=APPLIANCE.ip),
        route("nowhere", f"{BLUE_B}/32", "None", None),
    )
    try:
        _appliance_forwards(appliance, False)
        d.api.put(ROUTE_TABLE, table, wait=True)
        start = time.monotonic()
        d.api.put("/virtualNetworks/blue", blue_network(ROUTE_TABLE), wait=True)
        figures.record(
            "route table attached: PUT ?wait=applied answered", time.monotonic() - start, "s"
        )
        assert not ping(blue_a, BLUE_C, count=2, wait=0.5)  # to the appliance, which drops it
        _appliance_forwards(appliance, True)
        before = link_stats(appliance, "eth0")
        assert ping(blue_a, BLUE_C, count=3)  # remote appliance
        assert ping(blue_b, BLUE_C, count=3)  # local appliance
        after = link_stats(appliance, "eth0")
        # Each echo request in and out again through the appliance (the replies go direct:
        # subnet app has no route table).
        assert after["rx"] - before["rx"] >= 6, (before, after)
        assert after["tx"] - before["tx"] >= 6, (before, after)
        assert ping(blue_c, BLUE_A, count=2)
        assert not ping(blue_a, BLUE_B, count=2, wait=0.5)  # None: dropped
        d.api.put("/virtualNetworks/blue", blue_network(), wait=True)
        _appliance_forwards(appliance, False)
        assert ping(blue_a, BLUE_C, count=2)  # direct again
        assert ping(blue_a, BLUE_B, count=2)
    finally:
        d.api.put("/virtualNetworks/blue", blue_network(), wait=True)
        d.api.delete(ROUTE_TABLE, wait=True)
        d.api.delete(APPLIANCE.path, wait=True)
    assert appliance not in namespaces()


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
    deployment: Deployment, figures: Figures
) -> None:
    d = deployment
    start = time.monotonic()
    created = d.api.put(LATE.path, LATE.body())
    namespace = d.tenants.nics[LATE.name] = str(created["instanceId"])
    pinged = first_ping(namespace, BLUE_A)
    figures.record("new endpoint: PUT to first ping reply", pinged - start, "s")
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


def test_drift_is_repaired_on_the_next_resync(deployment: Deployment, figures: Figures) -> None:
    d = deployment
    agent = d.agents[2]
    blue_b = d.endpoint_ns("blue-b")
    veth = f"s{blue_b.replace('-', '')[:12]}"
    router = d.router_ns(2, "blue")
    offset = agent.log_size()
    start = time.monotonic()
    run("ip", "-n", router, "link", "delete", veth)  # by hand, behind the agent's back
    # The next resync finds it and changes the kernel (an unchanged one logs nothing).
    wait_until(
        lambda: any(changes > 0 for _, changes in agent.changes(offset)),
        REPAIR_BOUND,
        "a reconcile of host 2 repairing the deleted veth",
    )
    figures.record(
        "drift (a veth deleted by hand) repaired by a resync", time.monotonic() - start, "s"
    )
    assert veth in links(router)
    assert ping(d.endpoint_ns("blue-a"), BLUE_B, count=2)


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


def test_killing_and_restarting_an_agent_leaves_traffic_alone(
    deployment: Deployment, figures: Figures, tmp_path: Path
) -> None:
    d = deployment
    agent = d.agents[2]
    before = _kernel_state(d, 2)
    replies = 100  # 1 s of ping at each step
    with pinging(d.endpoint_ns("blue-a"), BLUE_B, tmp_path / "ping.txt", 0.01) as pinger:
        pinger.wait_replies(replies)
        agent.kill()
        pinger.wait_replies(replies)  # no agent: the kernel forwards on its own
        offset = agent.log_size()
        started = time.monotonic()
        agent.start()
        # Converged: reconciled on start and applied what the controller sent on reconnecting.
        wait_until(
            lambda: _converged([why for why, _ in agent.changes(offset)]),
            CONVERGENCE_BOUND,
            "the restarted agent converging",
        )
        figures.record("restarted agent: start to converged", time.monotonic() - started, "s")
        pinger.wait_replies(replies)
    sent, lost = pinger.lost()
    figures.record("pings sent across an agent's kill and restart", sent)
    figures.record("pings lost across an agent's kill and restart", lost)
    print(f"the restarted agent logged:\n{agent.log_since(offset)}")
    assert sent >= 3 * replies
    assert lost <= LOSS_BOUND * sent, (sent, lost)
    # Nothing was changed, and the kernel agrees.
    assert [n for _, n in agent.changes(offset)] == [0] * len(agent.changes(offset)), (
        agent.log_since(offset)
    )
    assert _kernel_state(d, 2) == before
    d.api.wait_status(["/servers/host2", "/networkInterfaces/blue-b"], within=CONVERGENCE_BOUND)


def _converged(reconciles: list[str]) -> bool:
    return reconciles[:1] == ["start"] and "apply" in reconciles
