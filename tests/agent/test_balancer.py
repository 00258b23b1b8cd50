"""The load-balancing table of the Linux agent (``controller.agent.linux.balancer``).

* reading ``lbRule`` objects: what is enforced, what is reported;
* rendering: the VIP verdict map, a slot map and a chain per rule, the shared seed;
* changes in place: a DIP that leaves is element changes of exactly its slots, nothing else;
* real packets: a router namespace between a client and three DIPs spreads connections over
  all three by the slot table; a DIP leaving changes elements only, a connection held open to
  it keeps echoing, new ones avoid it; SourceIP keeps one client on one DIP.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.agent.linux.balancer import Balancing, Reader, balancing_from_objects
from controller.agent.linux.lb_tables import FLOW_HASH_SEED, LB_TABLE, LbTables, render
from controller.policy import slots
from controller.policy.flow_hash import host_slots
from tests.support.processes import stop_process
from tests.support.traffic import ask, echoes, hold, whoami

VIP = "198.51.100.10"
DIPS = ["192.0.2.17", "192.0.2.18", "192.0.2.19"]
RULE = "lbRule/web"


def lb_rule(dips: list[str] = DIPS, **members: Any) -> dict[str, Any]:
    return {
        "vips": [VIP],
        "protocol": "Tcp",
        "frontendPort": 80,
        "backendPort": 8080,
        "distribution": "Default",
        "dips": dips,
        "slots": slots.encoded(dips),
    } | members


def tables(**rules: dict[str, Any]) -> LbTables:
    found, problems = balancing_from_objects({f"lbRule/{k}": v for k, v in rules.items()})
    assert problems == []
    return render(found)


NOTHING = render(Balancing())


# ---------------------------------------------------------------- reading the objects


def test_a_rule_holds_the_dip_of_every_slot() -> None:
    found, problems = balancing_from_objects({RULE: lb_rule(), "acl/x": {}})
    assert problems == []
    rule = found.rules[RULE]
    table = slots.table(DIPS)
    assert rule.slots == tuple(DIPS[index] for index in table)
    assert len(rule.slots) == slots.SMALL_TABLE
    assert rule.protocols == ("tcp",)
    assert (rule.frontend_port, rule.backend_port) == (80, 8080)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"protocol": "Icmp"}, "protocol"),
        ({"distribution": "Random"}, "distribution"),
        ({"frontendPort": 0}, "frontendPort"),
        ({"backendPort": "80"}, "backendPort"),
        ({"vips": ["2001:db8::1"]}, "IPv6"),
        ({"vips": ["not an address"]}, "vips"),
        ({"slots": "!!"}, "slots"),
        ({"idleTimeoutMinutes": 0}, "idleTimeoutMinutes"),
        ({"floatingIp": True}, "floatingIp"),
        ({"slots": slots.encode([0, 5], 3)}, "beyond dips"),
    ],
)
def test_what_cannot_be_balanced_is_reported_not_enforced(
    members: dict[str, Any], message: str
) -> None:
    found, problems = balancing_from_objects({RULE: lb_rule(**members)})
    assert found == Balancing()
    assert [key for key, _ in problems] == [RULE]
    assert message in problems[0][1]


def test_two_rules_on_one_frontend_keep_the_first() -> None:
    found, problems = balancing_from_objects({"lbRule/a": lb_rule(), "lbRule/b": lb_rule()})
    assert list(found.rules) == ["lbRule/a"]
    assert problems == [("lbRule/b", "its frontend is already balanced by lbRule/a")]


# ---------------------------------------------------------------- rendering


def test_the_vip_jumps_to_a_chain_taking_the_mux_choice_else_hashing_the_flow() -> None:
    rendered = tables(web=lb_rule())
    ((key, verdict),) = rendered.vips.items()
    ((chain, rules),) = rendered.chains.items()
    ((name, elements),) = rendered.slots.items()
    assert key == f"{VIP} . tcp . 80"
    assert verdict == f"jump {chain}"
    flow = "ip saddr . ip daddr . meta l4proto . th sport . th dport"
    assert rules == (
        "meta l4proto tcp dnat ip to ether daddr map @steer : 8080",
        f"meta l4proto tcp dnat ip to jhash {flow} mod 64 seed {FLOW_HASH_SEED:#x} "
        f"map @{name} : 8080",
    )
    # The host's own table deals the slots out in turn: as many each, give or take one.
    assert elements[:4] == ((0, DIPS[0]), (1, DIPS[1]), (2, DIPS[2]), (3, DIPS[0]))
    assert sorted(Counter(dip for _, dip in elements).values()) == [21, 21, 22]


def test_the_host_table_keeps_its_size_within_a_power_of_two() -> None:
    assert [host_slots(n) for n in (1, 3, 8, 9, 16, 17, 100)] == [64, 64, 64, 128, 128, 256, 1024]


def test_a_local_dip_can_be_chosen_by_a_mux_and_hairpins() -> None:
    found, _ = balancing_from_objects({RULE: lb_rule()})
    rendered = render(found, {DIPS[1]: "02:00:00:00:00:01", "192.0.2.99": "02:00:00:00:00:09"})
    assert rendered.sets["steer"] == {"02:00:00:00:00:01": DIPS[1]}
    assert rendered.sets["hairpin"] == {f"{DIPS[1]} . {DIPS[1]}": ""}


@pytest.mark.parametrize(
    ("distribution", "flow"),
    [("SourceIP", "jhash ip saddr mod"), ("sourceIPProtocol", "jhash ip saddr . meta l4proto mod")],
)
def test_the_distribution_chooses_what_is_hashed(distribution: str, flow: str) -> None:
    ((rules),) = tables(web=lb_rule(distribution=distribution)).chains.values()
    assert flow in rules[1]


def test_all_protocols_balance_tcp_and_udp() -> None:
    rendered = tables(web=lb_rule(protocol="All"))
    assert list(rendered.vips) == [f"{VIP} . tcp . 80", f"{VIP} . udp . 80"]
    assert [len(rules) for rules in rendered.chains.values()] == [4]


def test_a_rule_without_healthy_dips_drops() -> None:
    rendered = tables(web=lb_rule(dips=[]))
    assert rendered.slots == {}
    assert list(rendered.chains.values()) == [("drop",)]


# ---------------------------------------------------------------- changes in place


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sets(st.integers(0, 5), max_size=4)), max_size=12))
def test_a_table_patched_rule_by_rule_is_the_table_rendered_whole(
    steps: list[tuple[int, set[int]]],
) -> None:
    """Rules come, change their DIPs (some local: steering and hairpin follow) and go; the
    table patched from the previous one equals the one rendered whole, as does its text."""
    local = {f"192.0.2.{20 + i}": f"02:00:00:00:00:{i:02x}" for i in (1, 3)}
    objects: dict[str, Any] = {}
    reader = Reader()
    previous = None
    for rule, dips in steps:
        key = f"lbRule/r{rule}"
        addresses = [f"192.0.2.{20 + d}" for d in sorted(dips)]
        if addresses:
            objects[key] = lb_rule(addresses, vips=[f"198.51.100.{rule}"], virtualNetworks=["v"])
        else:
            objects.pop(key, None)
        reader.update(objects, [key])
        balancing = reader.of_network("v")
        patched = render(balancing, local, previous)
        whole = render(balancing_from_objects(objects)[0].of_network("v"), local)
        assert patched == whole
        assert patched.text == whole.text
        previous = (balancing, local, patched)


def test_unchanged_tables_need_no_transaction() -> None:
    assert tables(web=lb_rule()).changes_from(tables(web=lb_rule())) == ""


def test_a_dip_leaving_changes_elements_only() -> None:
    old, new = tables(web=lb_rule()), tables(web=lb_rule(dips=DIPS[:2]))
    script = new.changes_from(old).splitlines()
    assert len(script) == 2
    deleted, added = script
    assert deleted.startswith(f"delete element ip {LB_TABLE} slots_")
    assert added.startswith(f"add element ip {LB_TABLE} slots_")
    assert DIPS[2] not in added


def test_a_rule_comes_and_goes_with_its_map_and_chain() -> None:
    empty, full = NOTHING, tables(web=lb_rule())
    came = full.changes_from(empty).splitlines()
    assert came[0].startswith(f"add map ip {LB_TABLE} slots_")
    assert came[1].startswith(f"add chain ip {LB_TABLE} lb_")
    assert came[-1].startswith(f"add element ip {LB_TABLE} vips")
    went = empty.changes_from(full).splitlines()
    assert next(line for line in went if " vips " in line).startswith(
        f"delete element ip {LB_TABLE} vips"
    )
    assert went[-1].startswith(f"delete map ip {LB_TABLE} slots_")


def test_losing_the_last_dip_rewrites_the_chain_to_drop() -> None:
    script = tables(web=lb_rule(dips=[])).changes_from(tables(web=lb_rule())).splitlines()
    script = [line for line in script if " hairpin " not in line]
    assert script[0].startswith(f"flush chain ip {LB_TABLE} lb_")
    assert script[1].endswith(" drop")
    assert script[2].startswith(f"delete map ip {LB_TABLE} slots_")


# ---------------------------------------------------------------- real packets


def run(*command: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(
        command, input=stdin, text=True, capture_output=True, check=False, timeout=60
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Lab:
    router: str
    client: str
    dips: str

    def nft(self, script: str) -> None:
        run("ip", "netns", "exec", self.router, "nft", "-f", "-", stdin=script)

    def connect(self, count: int) -> list[str]:
        """The DIPs that answered ``count`` connections to the VIP ("" for one that failed)."""
        return [dip for dip, _ in ask(self.client, VIP, 80, count)]

    def hold(self) -> subprocess.Popen[str]:
        return hold(self.client, VIP, 80)


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A router namespace between a client (192.0.2.1) and a namespace holding the three DIP
    addresses, with a server on 8080; the router loads the load-balancing table."""
    tag = uuid.uuid4().hex[:6]
    lab = Lab(f"sdnc-test-lbr-{tag}", f"sdnc-test-lbc-{tag}", f"sdnc-test-lbd-{tag}")
    with contextlib.ExitStack() as cleanup:
        for name in (lab.router, lab.client, lab.dips):
            cleanup.callback(run, "ip", "netns", "del", name, check=False)
            run("ip", "netns", "add", name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "netns", "exec", lab.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sides = (
            (lab.client, "c", "192.0.2.14/28", ["192.0.2.1/28"], "192.0.2.14"),
            (lab.dips, "d", "192.0.2.30/28", [f"{dip}/28" for dip in DIPS], "192.0.2.30"),
        )
        for namespace, side, gateway, addresses, via in sides:
            port = f"lb{side}{tag}"
            run("ip", "-n", lab.router, "link", "add", port, "type", "veth", "peer", "name",
                "eth0", "netns", namespace)  # fmt: skip
            run("ip", "-n", lab.router, "addr", "add", gateway, "dev", port)
            run("ip", "-n", lab.router, "link", "set", port, "up")
            for address in addresses:
                run("ip", "-n", namespace, "addr", "add", address, "dev", "eth0")
            run("ip", "-n", namespace, "link", "set", "eth0", "up")
            run("ip", "-n", namespace, "route", "add", "default", "via", via)
        cleanup.enter_context(whoami(lab.dips, 8080))
        lab.nft(NOTHING.text)
        yield lab


@pytest.mark.dataplane("nft")
def test_connections_spread_over_the_pool_and_a_dip_change_is_elements(lab: Lab) -> None:
    before = tables(web=lb_rule())
    lab.nft(before.changes_from(NOTHING))
    counts = Counter(lab.connect(90))
    print("connections per DIP:", dict(counts))
    assert set(counts) == set(DIPS), "every DIP gets connections, nothing else answers"
    assert min(counts.values()) >= 12, "each holds about a third of the slots"

    held = lab.hold()
    try:
        assert held.stdin is not None
        assert held.stdout is not None
        dip = held.stdout.readline().split()[0]
        assert dip in DIPS
        after = tables(web=lb_rule(dips=[d for d in DIPS if d != dip]))
        change = after.changes_from(before)
        assert all(" element " in line for line in change.splitlines()), change
        lab.nft(change)
        listed = run("ip", "netns", "exec", lab.router, "nft", "list", "table", "ip", LB_TABLE)
        assert f": {dip}" not in listed
        assert echoes(held, "still here"), "the held connection echoes"
        counts = Counter(lab.connect(60))
        print("after the removal:", dict(counts))
        assert dip not in counts, "new connections avoid the DIP that left"
        assert sum(counts.values()) == 60
    finally:
        stop_process(held)


@pytest.mark.dataplane("nft")
def test_source_ip_distribution_keeps_a_client_on_one_dip(lab: Lab) -> None:
    lab.nft(tables(web=lb_rule(distribution="SourceIP")).changes_from(NOTHING))
    assert len(set(lab.connect(20))) == 1
