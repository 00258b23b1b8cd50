"""The policy compiler: committed changes in, per-host policy deltas out. Pure: no I/O, no
clock, no settings; every fact arrives as an argument.

``Compiler.load`` builds the whole state at one revision (a replica's start). ``apply`` takes
the next committed change (an aggregate's new documents, or its deletion) and recomputes only
the objects that change could affect -- found through the model's indexes, never by scanning --
so its cost follows what the change touches, not the size of the deployment. For every object
it remembers the body, the hosts that hold it, its version (the revision of its last change)
and, per host, when it joined or left that host's scope; that is what lets an agent that
applied revision R resume with exactly the objects it is missing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from controller.policy.documents import is_patch
from controller.policy.model import Model
from controller.policy.objects import KINDS, Body, compute
from controller.policy.topology import Entity, entities_of

# The kinds of objects that describe one endpoint, and the entity types some kind names by
# instanceId (their appearance or departure is what such a kind watches).
_PER_ENDPOINT = tuple(kind for kind in KINDS if kind.per_endpoint)
_NAMED_TYPES = tuple(dict.fromkeys(t for kind in KINDS for t in kind.names))


@dataclass(frozen=True)
class Change:
    """One committed write: aggregate ``root`` of ``kind`` now has ``document`` (None:
    deleted), or has changed as ``document``, a patch, says."""

    revision: int
    root: str
    kind: str
    document: dict[str, object] | None


@dataclass(slots=True)
class HostDelta:
    upserts: dict[str, Body] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes)


@dataclass(slots=True)
class Placed:
    wire: str
    body: Body
    hosts: frozenset[str]
    version: int


# What an aggregate never seen contributes (shared, never changed).
_NOTHING: list[Entity] = []


@dataclass(frozen=True)
class Prepared:
    """What :meth:`Compiler.apply` works out from a change and from what its aggregate
    contributed before, and from nothing else: the aggregate's entities after the change, and
    those that went and came. Pure, so a replica can prepare a big change (a 10,000-rule ACL:
    tens of milliseconds) away from the event loop its agents are served on."""

    old: list[Entity]
    new: list[Entity]
    gone: list[Entity]
    came: list[Entity]


def prepare(change: Change, old: list[Entity]) -> Prepared:
    """``change`` prepared for an aggregate that contributed ``old`` (``Compiler.contributed``)."""
    if change.document is not None and is_patch(change.document):
        return _patched(change, change.document, old)
    new = entities_of(change.kind, change.document)
    gone, came = _difference(old, new)
    return Prepared(old, new, gone, came)


def _patched(change: Change, patch: dict[str, Any], old: list[Entity]) -> Prepared:
    """A patch (``policy.documents.patch_document``) over ``old``: every entity keeps what
    its row gave it (an entity's key is its row's lower-cased resourceRef) unless the patch
    rewrote or removed that row."""
    written = entities_of(change.kind, patch)
    touched = {str(row["ref"]).lower() for row in patch["rows"]}.union(patch["removed"])
    before = [entity for entity in old if entity.key in touched]
    new = [entity for entity in old if entity.key not in touched] + written
    gone, came = _difference(before, written)
    return Prepared(old, new, gone, came)


class Compiler:
    def __init__(self) -> None:
        self.model = Model()
        self.objects: dict[str, Placed] = {}
        self.revision = 0
        # The oldest revision an agent may resume from; older ones get a snapshot.
        self.floor = 0
        # How many objects the last ``apply`` recomputed (what its cost follows), and the wire
        # keys of the objects it removed (what was kept for them elsewhere can go).
        self.recomputed = 0
        self.vanished: list[str] = []
        self._by_wire: dict[str, str] = {}
        self._joined: defaultdict[str, dict[str, int]] = defaultdict(dict)
        self._left: defaultdict[str, dict[str, int]] = defaultdict(dict)

    # -- building -------------------------------------------------------------------------

    def load(self, changes: Iterable[Change], revision: int) -> None:
        """The state at ``revision`` from every aggregate's current documents."""
        for change in changes:
            self.model.replace(change.root, entities_of(change.kind, change.document))
        for config in self.model.configs:
            self.model.place(config)
        self.revision = self.floor = revision
        for name in self._all_names():
            computed = compute(self.model, name)
            if computed is not None:
                self.objects[name] = Placed(computed.wire, computed.body, computed.hosts, revision)
                self._by_wire[computed.wire] = name
                for host in computed.hosts:
                    self._joined[host][computed.wire] = revision

    def _all_names(self) -> Iterable[str]:
        for kind in KINDS:
            yield from (kind.name(key) for key in kind.keys(self.model))

    # -- incremental ----------------------------------------------------------------------

    def contributed(self, root: str) -> list[Entity]:
        """The entities aggregate ``root`` contributes now (what :func:`prepare` needs)."""
        return self.model.contributed.get(root, _NOTHING)

    def apply(self, change: Change, prepared: Prepared | None = None) -> dict[str, HostDelta]:
        """Take ``change`` (the next revision) and return the delta of every affected host.
        ``prepared``: :func:`prepare` of it, done elsewhere; ignored unless it was prepared
        from what the aggregate contributes now."""
        old = self.contributed(change.root)
        if prepared is None or prepared.old is not old:
            prepared = prepare(change, old)
        new, gone, came = prepared.new, prepared.gone, prepared.came
        names, configs = _dirty(self.model, gone)
        self.model.replace(change.root, new, (gone, came))
        # What went with what the change removed (a DIP's health with the DIP) shaped objects
        # too; the model as it is now still tells which.
        after_names, after_configs = _dirty(self.model, [*came, *self.model.take_dropped()])
        names |= after_names
        names |= _naming(self.model, _appeared_or_vanished(gone, came))
        for config in configs | after_configs:
            for group in self.model.place(config):
                names |= _group_objects(self.model, group)
        self.revision = change.revision
        deltas: defaultdict[str, HostDelta] = defaultdict(HostDelta)
        self.recomputed = len(names)
        self.vanished = []
        for name in names:
            self._recompute(name, deltas)
        return {host: delta for host, delta in deltas.items() if delta}

    def _recompute(self, name: str, deltas: defaultdict[str, HostDelta]) -> None:
        before = self.objects.get(name)
        after = compute(self.model, name)
        revision = self.revision
        if before is not None and (after is None or after.wire != before.wire):
            for host in before.hosts:
                self._leave(host, before.wire, deltas)
            del self.objects[name]
            del self._by_wire[before.wire]
            self.vanished.append(before.wire)
            before = None
        if after is None:
            return
        changed = before is None or before.body != after.body
        old_hosts = before.hosts if before is not None else frozenset()
        if not changed and (after.hosts is old_hosts or after.hosts == old_hosts):
            return  # the common case for the siblings of what changed: nothing to send
        for host in after.hosts:
            if changed or host not in old_hosts:
                deltas[host].upserts[after.wire] = after.body
            if host not in old_hosts:
                self._joined[host][after.wire] = revision
                self._left[host].pop(after.wire, None)
        for host in old_hosts - after.hosts:
            self._leave(host, after.wire, deltas)
        version = revision if changed else before.version if before else revision
        self.objects[name] = Placed(after.wire, after.body, after.hosts, version)
        self._by_wire[after.wire] = name

    def _leave(self, host: str, wire: str, deltas: defaultdict[str, HostDelta]) -> None:
        deltas[host].deletes.append(wire)
        self._joined[host].pop(wire, None)
        self._left[host][wire] = self.revision

    # -- what a host holds ----------------------------------------------------------------

    def versions(self, wire: str) -> int:
        """The revision of the last change of object ``wire`` (which must exist)."""
        return self.objects[self._by_wire[wire]].version

    def snapshot(self, host: str) -> dict[str, Body]:
        """Every object ``host`` needs now."""
        return {wire: self.objects[self._by_wire[wire]].body for wire in self._joined.get(host, {})}

    def resume(self, host: str, applied: int) -> HostDelta | None:
        """What ``host``, which applied everything up to revision ``applied``, is missing; None
        when ``applied`` is older than this compiler can tell (the agent needs a snapshot)."""
        if applied < self.floor or applied > self.revision:
            return None
        delta = HostDelta()
        for wire, joined in self._joined.get(host, {}).items():
            placed = self.objects[self._by_wire[wire]]
            if max(placed.version, joined) > applied:
                delta.upserts[wire] = placed.body
        delta.deletes = [w for w, at in self._left.get(host, {}).items() if at > applied]
        return delta

    def forget_before(self, revision: int) -> None:
        """Drop the memory of departures older than ``revision``; resumes from before it
        then get a snapshot."""
        self.floor = max(self.floor, revision)
        for left in self._left.values():
            for wire in [w for w, at in left.items() if at < revision]:
                del left[wire]


def _difference(old: list[Entity], new: list[Entity]) -> tuple[list[Entity], list[Entity]]:
    """The entities of ``old`` that ``new`` does not have as they were, and the reverse. A
    write carries its whole aggregate (every subnet of a virtual network, every
    ipConfiguration of a NIC); what it left as it was cannot change any object."""
    before = {(type(entity), entity.key): entity for entity in old}
    after = {(type(entity), entity.key): entity for entity in new}
    gone = [entity for slot, entity in before.items() if after.get(slot) != entity]
    came = [entity for slot, entity in after.items() if before.get(slot) != entity]
    return gone, came


def _group_objects(model: Model, group: str) -> set[str]:
    """The objects whose hosts follow the hosts of ``group`` (a ``group_name``)."""
    group_kind, _, key = group.partition(":")
    names: set[str] = set()
    for kind in KINDS:
        rule = kind.follows.get(group_kind)
        if rule is not None:
            names |= kind.names_of(rule(model, key))
    return names


def _appeared_or_vanished(gone: Iterable[Entity], came: Iterable[Entity]) -> set[tuple[type, str]]:
    """Entities some kind names by instanceId (as ``(type, key)``) that came, went or came
    again under another instanceId (what is unchanged is in neither ``gone`` nor ``came``)."""

    def named(entities: Iterable[Entity]) -> set[tuple[type, str, str]]:
        return {
            (type(e), e.key, getattr(e, "id", "")) for e in entities if isinstance(e, _NAMED_TYPES)
        }

    return {(kind, key) for kind, key, _ in named(gone) ^ named(came)}


def _naming(model: Model, changed: set[tuple[type, str]]) -> set[str]:
    """The objects whose bodies name one of the ``changed`` entities."""
    names: set[str] = set()
    for entity_type, key in changed:
        for kind in KINDS:
            rule = kind.names.get(entity_type)
            if rule is not None:
                names |= kind.names_of(rule(model, key))
    return names


def _dirty(model: Model, entities: Iterable[Entity]) -> tuple[set[str], set[str]]:
    """Objects whose body ``entities`` may shape, and the endpoints whose placement they may
    change -- read from ``model`` as it is when called."""
    names: set[str] = set()
    configs: set[str] = set()
    for entity in entities:
        configs |= model.configs_affected_by(entity)
        for kind in KINDS:
            rule = kind.shaped_by.get(type(entity))
            if rule is not None:
                names |= kind.names_of(rule(model, entity))
    for kind in _PER_ENDPOINT:
        names |= kind.names_of(configs)
    return names, configs
