"""The incremental compiler is indistinguishable from a full recompute.

Random northbound histories (``tests.policy.strategies``: valid topologies and the writes the
NBI accepts, as change-log documents) are fed to ``Compiler.apply`` one change at a time, and
checked against ``full_compile`` of the documents as they stand after each change:

* every host that replays the deltas it was sent (onto the snapshot of the replica's load)
  holds exactly the full compile for it, and so does ``snapshot``; the compiler's model and
  objects equal those of a replica that loads the same documents from scratch;
* an agent that joins late (snapshot) or disconnects and resumes (``resume``) ends with
  exactly the full compile; after ``forget_before(R)``, resuming from before R answers None
  (snapshot needed) and resuming from R or later is still exact;
* deltas are minimal: a host gets an upsert only for an object it does not hold or holds with
  another body, a delete only for an object it holds, and a write that changes nothing the
  compiler reads sends nothing;
* the number of objects a change recomputes depends on what it touches, not on the size of
  the deployment.

``SDNC_POLICY_PROFILE=thorough`` runs many more and longer histories.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from controller.policy import Body, Change, Compiler, HostDelta, full_compile
from controller.policy.compiler import Prepared, prepare
from controller.policy.topology import patchable
from tests.policy.strategies import (
    AclWrite,
    ConfigWrite,
    NicWrite,
    Scenario,
    ServerWrite,
    SubnetWrite,
    TableWrite,
    VnetWrite,
    World,
    scenarios,
    subnet_ref,
    worlds,
)

THOROUGH = os.environ.get("SDNC_POLICY_PROFILE", "").lower() == "thorough"
# The default keeps the whole file well under a minute on two cores.
EXAMPLES = 2000 if THOROUGH else 60
HISTORY = scenarios(max_setup=40, max_steps=80) if THOROUGH else scenarios()
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Objects = dict[str, Body]


def wire(body: Body) -> Body:
    """A body as an agent receives it (through JSON, so nothing is shared with the compiler)."""
    copied: Body = json.loads(json.dumps(body))
    return copied


class Agent:
    """What one host holds: a snapshot and every delta it applied since."""

    def __init__(self, host: str, objects: Objects) -> None:
        self.host = host
        self.objects = {key: wire(body) for key, body in objects.items()}

    def apply(self, delta: HostDelta, *, minimal: bool) -> None:
        """Apply ``delta``; with ``minimal``, it must not delete what this host does not hold
        nor upsert what it holds with the same body."""
        assert not set(delta.upserts) & set(delta.deletes), f"{self.host}: upsert and delete"
        for key in delta.deletes:
            assert not minimal or key in self.objects, f"{self.host}: delete of {key}, not held"
            self.objects.pop(key, None)
        for key, body in delta.upserts.items():
            assert not minimal or self.objects.get(key) != body, (
                f"{self.host}: upsert of {key} with the body it holds"
            )
            self.objects[key] = wire(body)


def loaded(scenario: Scenario) -> Compiler:
    compiler = Compiler()
    compiler.load(scenario.initial, scenario.start)
    return compiler


def agents_of(compiler: Compiler, hosts: Iterable[str]) -> dict[str, Agent]:
    return {host: Agent(host, compiler.snapshot(host)) for host in hosts}


def expected(
    documents: Sequence[Change], revision: int, hosts: Iterable[str]
) -> dict[str, Objects]:
    full = full_compile(documents, revision)
    assert set(full) <= set(hosts), "the full compile names a host that never existed"
    return {host: full.get(host, {}) for host in hosts}


def model_fields(compiler: Compiler) -> dict[str, object]:
    """The model's entities and indexes, field by field (so a failure names the field)."""
    model = compiler.model
    # The memo of group hosts is not part of the state, but what it remembers must be true.
    counts = {
        "vnet": model.vnet_hosts_count,
        "acl": model.acl_hosts_count,
    }
    for group, hosts in model.hosts_of_group.items():
        kind, _, key = group.partition(":")
        assert hosts == frozenset(counts[kind].get(key, ())), group
    fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if f.compare}
    # What each aggregate contributes is a set (a patch puts what it wrote last).
    fields["contributed"] = {
        root: {(type(entity).__name__, entity.key): entity for entity in entities}
        for root, entities in model.contributed.items()
    }
    return fields


def placed(compiler: Compiler) -> dict[str, tuple[str, Body, frozenset[str]]]:
    return {name: (p.wire, p.body, p.hosts) for name, p in compiler.objects.items()}


def deliver(deltas: dict[str, HostDelta], agents: dict[str, Agent], *, minimal: bool) -> None:
    for host, delta in deltas.items():
        assert delta, f"an empty delta for {host}"
        assert host in agents, f"a delta for {host}, which is no server"
        agents[host].apply(delta, minimal=minimal)


def prepared(compiler: Compiler, change: Change) -> Prepared | None:
    """What a replica hands ``apply`` with ``change``, by turns: nothing (``apply`` prepares
    it), the change prepared elsewhere (a big one, off the event loop), or one prepared
    against what the aggregate contributed some other time, which ``apply`` must not use."""
    turn = change.revision % 3
    if turn == 0:
        return None
    if turn == 1:
        return prepare(change, compiler.contributed(change.root))
    return prepare(change, [])


def as_patch(change: Change, before: Sequence[Change]) -> Change:
    """``change`` as a writer records it when its aggregate existed before (in ``before``, the
    documents before it) and its kind allows: the rows it inserted or rewrote and the refs of
    those it removed."""
    old = next((c.document for c in before if c.root == change.root), None)
    new = change.document
    if old is None or new is None or "rows" not in new or not patchable(change.kind):
        return change
    stored = {row["id"]: row for row in old["rows"]}
    written = [row for row in new["rows"] if stored.get(row["id"]) != row]
    kept = {row["id"] for row in new["rows"]}
    removed = [str(row["ref"]).lower() for row in old["rows"] if row["id"] not in kept]
    return replace(change, document={"rows": written, "removed": sorted(removed)})


# -- a. every change leaves every host with the full compile ------------------------------


@PROPERTY
@given(HISTORY)
def test_after_every_change_every_host_holds_the_full_compile(scenario: Scenario) -> None:
    compiler = loaded(scenario)
    hosts = scenario.hosts
    agents = agents_of(compiler, hosts)
    assert {h: a.objects for h, a in agents.items()} == expected(
        scenario.initial, scenario.start, hosts
    )
    before = scenario.initial
    for step in scenario.steps:
        # By turns the whole aggregate, or what changed of it (a patch).
        change = as_patch(step.change, before) if step.change.revision // 3 % 2 else step.change
        before = step.documents
        note(f"r{change.revision} {step.label}: {change.document}")
        deliver(compiler.apply(change, prepared(compiler, change)), agents, minimal=False)
        want = expected(step.documents, step.change.revision, hosts)
        assert {h: a.objects for h, a in agents.items()} == want
        assert {h: compiler.snapshot(h) for h in hosts} == want
        # The internal state equals a recompute: the model with its indexes, and the objects
        # with their hosts.
        fresh = Compiler()
        fresh.load(step.documents, step.change.revision)
        assert model_fields(compiler) == model_fields(fresh)
        assert placed(compiler) == placed(fresh)
    event(f"objects at the end: {min(len(compiler.objects) // 10 * 10, 50)}+")


@PROPERTY
@given(worlds(), st.randoms(use_true_random=False))
def test_the_full_compile_does_not_depend_on_document_order(
    world: World, rnd: random.Random
) -> None:
    documents = world.documents()
    shuffled = list(documents)
    rnd.shuffle(shuffled)
    assert full_compile(shuffled, world.revision) == full_compile(documents, world.revision)


# -- b. agents that join late or reconnect ------------------------------------------------


@PROPERTY
@given(HISTORY, st.data())
def test_late_and_reconnecting_agents_end_with_the_full_compile(
    scenario: Scenario, data: st.DataObject
) -> None:
    count = len(scenario.steps)
    join = data.draw(st.integers(0, count), label="snapshot after step")
    leave = data.draw(st.integers(0, count), label="disconnect after step")
    back = data.draw(st.integers(leave, count), label="resume after step")
    hosts = scenario.hosts
    compiler = loaded(scenario)
    late: dict[str, Agent] = {}
    away: dict[str, Agent] = {}
    applied = scenario.start

    def checkpoint(index: int) -> None:
        nonlocal applied
        if index == join:
            late.update(agents_of(compiler, hosts))
        if index == leave:
            away.update(agents_of(compiler, hosts))
            applied = compiler.revision
        if index == back:
            for host, agent in away.items():
                resumed = compiler.resume(host, applied)
                assert resumed is not None, f"resume from r{applied} at r{compiler.revision}"
                agent.apply(resumed, minimal=False)

    checkpoint(0)
    for index, step in enumerate(scenario.steps, 1):
        before = {placed.wire for placed in compiler.objects.values()}
        deltas = compiler.apply(step.change)
        # What the hub may forget: exactly the objects that are gone.
        after = {placed.wire for placed in compiler.objects.values()}
        assert sorted(compiler.vanished) == sorted(before - after)
        if index > join:
            deliver(deltas, late, minimal=True)
        if index > back:
            deliver(deltas, away, minimal=True)
        checkpoint(index)
    want = expected(scenario.steps[-1].documents, compiler.revision, hosts)
    assert {h: a.objects for h, a in late.items()} == want
    assert {h: a.objects for h, a in away.items()} == want


# -- c. resume from any remembered revision; snapshot before the floor --------------------


@PROPERTY
@given(HISTORY, st.data())
def test_resume_is_exact_from_every_revision_since_the_floor(
    scenario: Scenario, data: st.DataObject
) -> None:
    hosts = scenario.hosts
    compiler = loaded(scenario)
    live = agents_of(compiler, hosts)
    held = {scenario.start: {h: dict(a.objects) for h, a in live.items()}}
    for step in scenario.steps:
        revision = step.change.revision
        deliver(compiler.apply(step.change), live, minimal=True)
        held[revision] = {h: dict(a.objects) for h, a in live.items()}
        if data.draw(st.booleans(), label=f"forget at r{revision}"):
            floor = data.draw(st.integers(compiler.floor, revision), label="forget before")
            compiler.forget_before(floor)
        want = expected(step.documents, revision, hosts)
        for applied, state in held.items():
            for host in hosts:
                resumed = compiler.resume(host, applied)
                if applied < compiler.floor:
                    assert resumed is None, f"resume from {applied} below the floor"
                    continue
                assert resumed is not None, f"resume from {applied} (floor {compiler.floor})"
                agent = Agent(host, state[host])
                agent.apply(resumed, minimal=False)
                assert agent.objects == want[host], f"{host} resumed from r{applied}"
        for host in hosts:
            assert compiler.resume(host, revision + 1) is None, "resume from the future"


# -- d. deltas are minimal ----------------------------------------------------------------

NO_OP = (".same", "logicalNetwork.put", "virtualSwitchManager.put")


@PROPERTY
@given(HISTORY)
def test_deltas_send_only_what_changed(scenario: Scenario) -> None:
    compiler = loaded(scenario)
    agents = agents_of(compiler, scenario.hosts)
    for step in scenario.steps:
        note(f"r{step.change.revision} {step.label}")
        deltas = compiler.apply(step.change)
        if step.label.endswith(NO_OP):
            assert deltas == {}, f"{step.label} changed nothing, yet sent {deltas}"
        deliver(deltas, agents, minimal=True)
    want = expected(scenario.steps[-1].documents, compiler.revision, scenario.hosts)
    assert {h: a.objects for h, a in agents.items()} == want


# -- e. the cost of a change follows what it touches --------------------------------------

SHARED_ACL = "Shared-Web"
PROBE_HOST = "Probe-Host"
RULE = {
    "protocol": "TCP",
    "sourcePortRange": "*",
    "destinationPortRange": "80",
    "sourceAddressPrefix": "*",
    "destinationAddressPrefix": "*",
    "action": "Allow",
    "priority": 100,
    "type": "Inbound",
    "logging": "Enabled",
}


def _deployment(scale: int) -> tuple[World, Compiler]:
    """``10 * scale`` hosts with ``20 * scale`` tenant virtual networks of ``100`` endpoints each
    (2,000 endpoints at scale 1), and the same neighbourhood at every scale: the shared ACL on
    ten endpoints of tenant 1 (directly) and on the probe subnet of tenant 0 (five endpoints on
    the probe host), whose own virtual network grows with the scale."""
    world = World()
    hosts = [PROBE_HOST, *(f"Host-{i:04}" for i in range(10 * scale))]
    changes = [world.put_server(ServerWrite(h)) for h in hosts]
    changes += [
        world.report_address(h, f"10.10.{i // 250}.{i % 250 + 1}") for i, h in enumerate(hosts[1:])
    ]
    changes.append(world.put_acl(AclWrite(SHARED_ACL, rules=(("AllowWeb", RULE),))))
    changes.append(world.put_acl(AclWrite("Tenant-Default", inbound="Deny")))
    changes.append(
        world.put_table(
            TableWrite(
                "Egress", (("Default", {"addressPrefix": "0.0.0.0/0", "nextHopType": "Internet"}),)
            )
        )
    )
    tenants = 20 * scale
    for tenant in range(tenants):
        size = 100 * scale if tenant == 0 else 100  # tenant 0 grows with the deployment
        subnets = [SubnetWrite("Probe", 0, acl=SHARED_ACL, table="Egress")] if tenant == 0 else []
        subnets += [
            SubnetWrite(f"Bulk{k}", k + 1, acl="Tenant-Default") for k in range((size + 199) // 200)
        ]
        vnet = f"Tenant-{tenant:03}"
        changes.append(world.put_vnet(VnetWrite(vnet, tuple(subnets))))
        for index in range(size):
            probe = tenant == 0 and index < 5
            subnet = subnet_ref(vnet, "Probe" if probe else f"Bulk{index // 200}")
            ip = f"192.168.{0 if probe else 2 * (index // 200 + 1)}.{index % 200 + 2}"
            acl = SHARED_ACL if tenant == 1 and index < 10 else None
            server = PROBE_HOST if probe else hosts[1 + (tenant * 7 + index) % (len(hosts) - 1)]
            config = ConfigWrite("IpConfig1", subnet, ip, acl=acl)
            nic = NicWrite(f"T{tenant:03}-VM{index:04}_Nic1", server, configs=(config,))
            changes.append(world.put_nic(nic))
    compiler = Compiler()
    compiler.load(world.documents(), world.revision)
    assert len(changes) == world.revision
    return world, compiler


def _costs(scale: int) -> dict[str, int]:
    world, compiler = _deployment(scale)
    endpoints = sum(1 for name in compiler.objects if name.startswith("endpoint:"))
    assert endpoints == 2000 * scale + 100 * (scale - 1)
    costs: dict[str, int] = {}

    def measure(label: str, change: Change) -> None:
        compiler.apply(change)
        costs[label] = compiler.recomputed

    acl = world.acls[SHARED_ACL]
    rule = dict(RULE, destinationPortRange="443")
    measure("ACL rule change", world.put_acl(replace(acl, rules=(("AllowWeb", rule),))))
    measure("probe host's first provider address", world.report_address(PROBE_HOST, "10.20.0.1"))
    measure("probe host's new provider address", world.report_address(PROBE_HOST, "10.20.0.2"))
    probe = world.nics["T000-VM0000_Nic1"]
    measure("probe NIC QoS", world.put_nic(replace(probe, qos={"inboundMaximumMbps": 100})))
    # To a host already in the probe's virtual network and in the shared ACL's hosts (it has
    # tenant 1's first endpoint), at every scale.
    neighbour = world.nics["T001-VM0000_Nic1"].server
    assert neighbour == "Host-0007"
    measure("probe NIC to a neighbour host", world.put_nic(replace(probe, server=neighbour)))
    table = world.tables["Egress"]
    measure("route change", world.put_table(replace(table, routes=())))
    # A write of the probe's virtual network (its document carries every subnet) that only
    # detaches the route table from the probe subnet.
    vnet = world.vnets["Tenant-000"]
    probe_subnet = replace(vnet.subnets[0], table=None)
    measure(
        "probe subnet's route table detached",
        world.put_vnet(replace(vnet, subnets=(probe_subnet, *vnet.subnets[1:]))),
    )
    measure("a kind the compiler does not read", world.put_vlan(True))
    return costs


# At most what each change touches in the neighbourhood, which is the same at every scale.
NEIGHBOURHOOD = {
    "ACL rule change": 1,  # its one rule (the ACL's own object has not changed)
    "probe host's first provider address": 1 + 5 * 2,  # its host object, its endpoints' mappings
    "probe host's new provider address": 1 + 5 * 2,  # (and those endpoints' own objects)
    "probe NIC QoS": 2,  # its endpoint and mapping
    "probe NIC to a neighbour host": 2 + 1,  # and the route table, which gains the host
    "route change": 2,  # the route table and the network of the probe subnet
    "probe subnet's route table detached": 1 + 5 * 2 + 1,  # network, endpoints, route table
    "a kind the compiler does not read": 0,
}


def test_a_change_recomputes_what_it_touches_not_the_deployment() -> None:
    small, large = _costs(1), _costs(5)
    assert small == large, "the same change recomputes more objects in a larger deployment"
    for change, bound in NEIGHBOURHOOD.items():
        assert small[change] <= bound, f"{change}: {small[change]} objects recomputed"


def test_a_rule_of_a_big_acl_costs_the_rule() -> None:
    """Each rule is an entity of its own: adding, changing or deleting one rule of a list of
    300 in use recomputes that rule's object alone, a default action the ACL's object alone,
    and each result is still the full compile's."""
    world = World()
    rules = tuple(
        (f"Rule{i:03}", dict(RULE, priority=100 + i, destinationPortRange=str(1000 + i)))
        for i in range(300)
    )
    changes = [world.put_server(ServerWrite("Host1")), world.put_acl(AclWrite("Big", rules=rules))]
    changes.append(world.put_vnet(VnetWrite("VNet1", (SubnetWrite("Web", 0, acl="Big"),))))
    config = ConfigWrite("IpConfig1", subnet_ref("VNet1", "Web"), "192.168.0.2")
    changes.append(world.put_nic(NicWrite("Nic1", "Host1", configs=(config,))))
    compiler = Compiler()
    compiler.load(changes, world.revision)
    host = world.instance_id("/servers/Host1")
    added = ("Added", dict(RULE, priority=999, destinationPortRange="8443"))
    edited = (rules[7][0], dict(rules[7][1], action="Deny"))
    for label, acl in [
        ("a rule added", AclWrite("Big", rules=(*rules, added))),
        ("a rule changed", AclWrite("Big", rules=(*rules[:7], edited, *rules[8:], added))),
        ("a rule deleted", AclWrite("Big", rules=(*rules[:7], edited, *rules[8:]))),
        (
            "a default action",
            AclWrite("Big", inbound="Deny", rules=(*rules[:7], edited, *rules[8:])),
        ),
    ]:
        deltas = compiler.apply(world.put_acl(acl))
        assert compiler.recomputed == 1, label
        assert len(deltas[host].upserts) + len(deltas[host].deletes) == 1, label
        assert compiler.snapshot(host) == full_compile(world.documents(), world.revision)[host]


def test_endpoints_naming_an_acl_that_goes_are_recomputed() -> None:
    """The NBI refuses to delete an ACL in use, but the compiler does not rely on it: when an
    ACL goes, the endpoints that name it are recomputed (their bodies list the ACLs that
    exist), so the result is still the full compile's."""
    world = World()
    changes = [world.put_server(ServerWrite("Host1")), world.put_acl(AclWrite("Web"))]
    changes.append(world.put_vnet(VnetWrite("VNet1", (SubnetWrite("Web", 0),))))
    config = ConfigWrite("IpConfig1", subnet_ref("VNet1", "Web"), "192.168.0.2", acl="Web")
    changes.append(world.put_nic(NicWrite("Nic1", "Host1", configs=(config,))))
    compiler = Compiler()
    compiler.load(changes, world.revision)
    acl_id = world.instance_id("/accessControlLists/Web")
    host = world.instance_id("/servers/Host1")
    endpoint = f"endpoint/{world.instance_id('/networkInterfaces/Nic1/ipConfigurations/IpConfig1')}"
    assert compiler.snapshot(host)[endpoint]["acls"] == [acl_id]
    world.revision += 1
    deltas = compiler.apply(Change(world.revision, acl_id, "accessControlLists", None))
    assert deltas[host].upserts[endpoint]["acls"] == []
    assert f"acl/{acl_id}" in deltas[host].deletes
    del world.acls["Web"]
    assert compiler.snapshot(host) == full_compile(world.documents(), world.revision)[host]
