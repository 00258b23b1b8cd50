"""The registry of southbound object kinds is the one list: the compiler, the follower's load,
the wire names and the documentation all follow it."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from controller import protocol
from controller.policy.documents import SOURCE_ROOTS
from controller.policy.model import ACL, VNET
from controller.policy.objects import KINDS
from controller.policy.topology import AGGREGATE_SOURCES, SOURCES, Entity

DOCS = Path(__file__).resolve().parents[2] / "docs" / "southbound.md"


def test_every_kind_has_a_wire_name_of_the_protocol() -> None:
    constants = {
        value
        for name, value in vars(protocol).items()
        if name.isupper() and isinstance(value, str) and name not in {"HELLO", "ACK"}
    }
    wires = [kind.wire for kind in KINDS]
    assert len(wires) == len(set(wires))
    assert set(wires) <= constants


def test_the_documented_object_table_lists_exactly_the_kinds() -> None:
    documented = set(re.findall(r"^\| `(\w+)/<", DOCS.read_text(), flags=re.MULTILINE))
    assert documented == {kind.wire for kind in KINDS}


def test_a_starting_replica_loads_every_kind_the_compiler_reads() -> None:
    assert {kind.split("/")[0] for kind in [*SOURCES, *AGGREGATE_SOURCES]} == set(SOURCE_ROOTS)


def test_every_rule_speaks_of_entities_and_groups_the_model_has() -> None:
    entity_types = set(typing.get_args(Entity))
    for kind in KINDS:
        assert set(kind.shaped_by) <= entity_types, kind.wire
        assert set(kind.names) <= entity_types, kind.wire
        assert set(kind.follows) <= {VNET, ACL}, kind.wire
        assert kind.shaped_by or kind.follows or kind.names or kind.per_endpoint, (
            f"nothing ever makes a {kind.wire} object dirty"
        )
