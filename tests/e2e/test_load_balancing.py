"""End to end: software load balancing with real packets -- an external client reaches a VIP
through a mux (host 3, named by a ``loadBalancerMux``) and the DIPs' hosts, each run by a real
``sdnc agent``, with everything built through the REST API (see ``lb_fabric``).

The tests share one deployment and run in file order. Each DIP runs a small HTTP server that
says which address answered and which client address it saw (``lb_traffic``). Waits end on
events (``?wait=applied``, connections counted); what the changes took is recorded with the
``figures`` fixture and only bounded generously here, except the probe's own bound.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import _print_logs
from tests.e2e.lb_fabric import (
    CLIENT_NIC,
    CLIENT_PORT,
    DIPS,
    HTTP_PORT,
    INNER,
    OTHER_NIC,
    PIP_NIC,
    PROBE_COUNT,
    PROBE_INTERVAL,
    PUBLIC,
    VIP,
    LbDeployment,
    Nic,
    dip_body,
    lb_deployment,
)
from tests.e2e.lb_traffic import Held, Stream, ask, hold, streaming
from tests.e2e.probes import reach, wait_until
from tests.support.figures import Figures

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.slow,
    pytest.mark.dataplane("bridge", "nft", "nsenter"),
]

DIP_IPS = {dip.ip for dip in DIPS}
CONNECTIONS = 300
SPREAD = 0.30  # each DIP's share may be this far from an even one
# Generous bounds (seconds) of what is measured and recorded: a pool change reaching the
# packets, a recovered DIP taking connections again. A failing probe's is not generous: the
# DIP must be out within the probe's own period.
ENFORCEMENT_BOUND = 20.0
RECOVERY_BOUND = 20.0
PROBE_BOUND = PROBE_INTERVAL * PROBE_COUNT + 1.0
# New connections in a row avoiding a DIP that say it is out: (2/3) ** 40 < 1e-7 by chance.
AVOIDING = 40


@pytest.fixture(scope="module")
def deployment(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LbDeployment]:
    """This module's own deployment (it overrides the conftest's, which the conftest's log
    fixture then reports on); ready once every DIP answers, from outside and from inside."""
    with lb_deployment(postgres_server, tmp_path_factory.mktemp("e2e-lb")) as d:
        try:
            for namespace in (d.client, d.ns(CLIENT_NIC)):
                every_dip = functools.partial(_every_dip_answers, namespace)
                wait_until(every_dip, 60, f"every DIP answering the VIP from {namespace}")
        except BaseException:
            _print_logs(d)  # type: ignore[arg-type]
            raise
        yield d


def _every_dip_answers(namespace: str) -> bool:
    return {server for server, _ in ask(namespace, VIP, 80, 30)} == DIP_IPS


def _assert_spread(answers: list[tuple[str, str]], client: str, figures: Figures) -> None:
    counts = Counter(server for server, _ in answers)
    print("connections per DIP:", dict(counts))
    for dip in sorted(DIP_IPS):
        figures.record(f"connections to {dip} of {len(answers)}", counts[dip])
    assert set(counts) == DIP_IPS, counts  # and none failed
    even = len(answers) / len(DIP_IPS)
    for dip in DIP_IPS:
        assert abs(counts[dip] - even) <= SPREAD * even, counts
    assert {seen for _, seen in answers} == {client}, "each DIP sees the client's own address"


def test_connections_from_outside_spread_over_the_dips_through_the_mux(
    deployment: LbDeployment, figures: Figures
) -> None:
    d = deployment
    _assert_spread(ask(d.client, VIP, 80, CONNECTIONS), d.client_ip, figures)


def test_connections_from_inside_the_virtual_network_spread_over_the_dips(
    deployment: LbDeployment, figures: Figures
) -> None:
    d = deployment
    _assert_spread(ask(d.ns(CLIENT_NIC), VIP, 80, CONNECTIONS), CLIENT_NIC.ip, figures)


def _avoided(streams: dict[str, Stream], start: float, dip: Nic, within: float) -> dict[str, float]:
    """Wait until each stream's last ``AVOIDING`` connections avoided ``dip``; how long after
    ``start`` each stopped reaching it."""

    def avoiding(stream: Stream) -> bool:
        tail = stream.since(start)[-AVOIDING:]
        return len(tail) == AVOIDING and all(who != dip.ip for _, (who, _) in tail)

    for name, stream in streams.items():
        wait_until(functools.partial(avoiding, stream), within + 30, f"{name} avoiding {dip.ip}")
    return {name: stream.avoided_from(start, dip.ip) for name, stream in streams.items()}


def _reached(streams: dict[str, Stream], start: float, dip: Nic, within: float) -> dict[str, float]:
    """Wait until each stream reached ``dip`` again; how long after ``start`` it first did."""

    def reached(stream: Stream) -> bool:
        return stream.reached_from(start, dip.ip) is not None

    for name, stream in streams.items():
        wait_until(functools.partial(reached, stream), within, f"{name} reaching {dip.ip} again")
    return {name: stream.reached_from(start, dip.ip) or 0.0 for name, stream in streams.items()}


@contextlib.contextmanager
def _streams(d: LbDeployment, address: str) -> Iterator[dict[str, Stream]]:
    """New connections to ``address``:80 from outside and from inside, in the background."""
    with (
        streaming(d.client, address, 80) as outside,
        streaming(d.ns(CLIENT_NIC), address, 80) as inside,
    ):
        streams = {"from outside": outside, "from inside": inside}
        for stream in streams.values():
            stream.wait_beyond(0.0, 10)
        yield streams


def _hold_some(namespace: str, client: str, victim: Nic, held: list[Held]) -> None:
    """Connections from ``namespace`` (whose address is ``client``) held open to the VIP: at
    least two on ``victim``, and some on the others."""
    mine: list[Held] = []
    for _ in range(60):
        mine.append(hold(namespace, VIP, 80))
        held.append(mine[-1])
        on = Counter(h.greeting[0] for h in mine)
        if on[victim.ip] >= 2 and len(mine) >= 8:
            break
    assert all(h.greeting == (h.greeting[0], client) for h in mine)
    assert {h.greeting[0] for h in mine} <= DIP_IPS
    assert Counter(h.greeting[0] for h in mine)[victim.ip] >= 2


def test_a_dip_leaving_the_pool_keeps_its_connections_and_gets_no_new_ones(
    deployment: LbDeployment, figures: Figures
) -> None:
    d = deployment
    victim, inside = DIPS[0], d.ns(CLIENT_NIC)
    held: list[Held] = []
    try:
        # From inside (balanced at the client's host) and from outside (through the mux,
        # which remembers each flow's DIP while it goes on).
        _hold_some(inside, CLIENT_NIC.ip, victim, held)
        _hold_some(d.client, d.client_ip, victim, held)
        assert all(h.echoes("before") for h in held)
        with _streams(d, VIP) as streams:
            start = time.monotonic()
            d.api.put(victim.path, dip_body(victim, in_web_pool=False), wait=True)
            answered = time.monotonic() - start
            avoided = _avoided(streams, start, victim, ENFORCEMENT_BOUND)
            failed_new = {name: s.failed_since(start) for name, s in streams.items()}
        dropped = sum(1 for h in held if not h.echoes("after"))
    finally:
        for h in held:
            h.close()
    figures.record("DIP out of the pool: PUT ?wait=applied answered", answered, "s")
    for name, seconds in avoided.items():
        figures.record(f"DIP out of the pool: PUT to enforcement, {name}", seconds, "s")
        figures.record(f"new connections failed during the change, {name}", failed_new[name])
    figures.record("held connections dropped by the DIP's removal", dropped, f"of {len(held)}")
    assert dropped == 0, "a connection held open survives the removal"
    assert failed_new == {"from outside": 0, "from inside": 0}
    assert max(avoided.values()) < ENFORCEMENT_BOUND
    for namespace in (d.client, inside):
        servers = {server for server, _ in ask(namespace, VIP, 80, 60)}
        assert servers == DIP_IPS - {victim.ip}, (namespace, servers)

    with _streams(d, VIP) as streams:
        start = time.monotonic()
        d.api.put(victim.path, dip_body(victim), wait=True)
        back = _reached(streams, start, victim, RECOVERY_BOUND)
    for name, seconds in back.items():
        figures.record(f"DIP back in the pool: PUT to its first connection, {name}", seconds, "s")


def test_a_dip_failing_its_probe_is_taken_out_and_comes_back(
    deployment: LbDeployment, figures: Figures
) -> None:
    d = deployment
    sick = DIPS[1]
    try:
        with _streams(d, VIP) as streams:
            # Serving before it fails: each stream gets to it (a stream's first few
            # connections may all have gone to the other DIPs).
            _reached(streams, 0.0, sick, RECOVERY_BOUND)
            start = time.monotonic()
            d.flag(sick).touch()
            out = _avoided(streams, start, sick, PROBE_BOUND)
            for stream in streams.values():  # none failed: the others took them
                assert stream.failed_since(start) == 0
            recovered = time.monotonic()
            d.flag(sick).unlink()
            back = _reached(streams, recovered, sick, RECOVERY_BOUND)
    finally:
        d.flag(sick).unlink(missing_ok=True)
    for name, seconds in out.items():
        figures.record(f"probe failing to the DIP's removal, {name}", seconds, "s")
    for name, seconds in back.items():
        figures.record(f"probe passing to the DIP's return, {name}", seconds, "s")
    print(f"probe bound {PROBE_BOUND} s; out after {out}; back after {back}")
    assert max(out.values()) <= PROBE_BOUND, out


def test_nat_rules_public_ips_and_hairpin(deployment: LbDeployment) -> None:
    d = deployment
    dip1 = DIPS[0]
    # Inbound NAT: the VIP's port 2222 is dip1's 8080, always.
    assert set(ask(d.client, VIP, 2222, 10)) == {(dip1.ip, d.client_ip)}
    # Outbound NAT: each pool member reaches the client as the VIP, and the replies come back
    # (through the mux, by the member's source-port block).
    for dip in DIPS:
        assert ask(d.ns(dip), d.client_ip, CLIENT_PORT, 3) == [(d.client_ip, VIP)] * 3, dip
    # The public IP: inbound it is the NIC, outbound the NIC is it.
    assert set(ask(d.client, PUBLIC, HTTP_PORT, 5)) == {(PIP_NIC.ip, d.client_ip)}
    assert ask(d.ns(PIP_NIC), d.client_ip, CLIENT_PORT, 3) == [(d.client_ip, PUBLIC)] * 3
    # Hairpin: a DIP reaching its own VIP lands on the others (seen as itself) and on itself
    # (seen as the VIP: a packet from its own address would be dropped).
    answers = Counter(ask(d.ns(dip1), VIP, 80, 60))
    print("dip1 to its own VIP:", dict(answers))
    others = {(dip.ip, dip1.ip) for dip in DIPS[1:]}
    assert set(answers) <= {(dip1.ip, VIP), *others}, answers
    assert answers[(dip1.ip, VIP)] > 0, "some connections land on dip1 itself"


def test_another_virtual_network_cannot_reach_an_internal_vip(deployment: LbDeployment) -> None:
    d = deployment
    answers = ask(d.ns(CLIENT_NIC), INNER, 80, 30)
    assert {server for server, _ in answers} == DIP_IPS, answers
    assert {seen for _, seen in answers} == {CLIENT_NIC.ip}
    assert reach(d.ns(OTHER_NIC), INNER, 80) == "dropped"


def _predicted_dip(d: LbDeployment, source_port: int) -> str:
    """The DIP the connectivity check says a TCP flow from the client endpoint's
    ``source_port`` to the VIP's port 80 goes to (its LoadBalancer hop)."""
    tenant = {"resourceRef": "/virtualNetworks/tenant"}
    body = {
        "properties": {
            "senderIpAddress": CLIENT_NIC.ip,
            "receiverIpAddress": VIP,
            "senderVirtualNetwork": tenant,
            "receiverVirtualNetwork": tenant,
            "protocol": "Tcp",
            "tcpProtocolConfig": {"sourcePort": source_port, "destinationPort": 80},
        }
    }
    created = d.api.put("/diagnostics/connectivityCheck", body)
    result = d.api.get(created["properties"]["connectivityCheckResult"]["resourceRef"])
    found = result["properties"]["result"]
    assert found["status"] == "Success", found
    (balancer,) = [hop for hop in found["hops"] if hop["type"] == "LoadBalancer"]
    return str(balancer["dip"])


def test_the_connectivity_check_predicts_the_dip_of_each_flow_to_a_vip(
    deployment: LbDeployment,
) -> None:
    d = deployment
    # Below the ephemeral range (32768-60999): the earlier tests' connections from this
    # namespace to the VIP took ports from it, and the DIP that closed one keeps its 4-tuple
    # in TIME_WAIT for a minute; a fixed port inside the range could meet such a leftover.
    ports = list(range(20000, 20012))
    predicted = [_predicted_dip(d, port) for port in ports]
    assert set(predicted) <= DIP_IPS
    landed = ask(d.ns(CLIENT_NIC), VIP, 80, source_ports=ports)
    assert [server for server, _ in landed] == predicted
