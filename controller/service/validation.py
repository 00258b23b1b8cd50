"""The checks a write runs over the nodes it writes that need nothing but those nodes: each
kind's own ``validate``, and each child kind's ``sibling_key`` among the children of one
parent. Pure, so a big aggregate's checks run on the heavy-work thread."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import orjson
from pydantic import BaseModel

from controller.core.kinds import SiblingKey
from controller.core.tree import Node

# A sibling key's values as the stored documents hold them: strings (an enumeration's value)
# and integers.
KeyValues = tuple[str | int, ...]


def validate_nodes(nodes: Sequence[Node]) -> None:
    """Each kind's checks of its nodes, then the sibling keys (``InvalidInput`` names what is
    wrong; of two children sharing a key, the later one)."""
    for node in nodes:
        if node.kind.validate is not None:
            node.kind.validate(node)
    for node in nodes:
        for children in node.children.values():
            key = children[0].kind.sibling_key if children else None
            if key is not None:
                _check_unique(children, key)


def key_values(node: Node, key: SiblingKey) -> KeyValues:
    """The values of ``key``'s members in ``node``'s properties."""
    names = _field_names(type(node.model))
    return tuple(_key_value(getattr(node.model, names[member])) for member in key.members)


def sibling_key_text(node: Node) -> str | None:
    """What the ``sibling_key`` column holds for ``node``: its key's values as JSON text."""
    key = node.kind.sibling_key
    return None if key is None else orjson.dumps(key_values(node, key)).decode()


def _key_value(value: object) -> str | int:
    if isinstance(value, str):  # an enumeration too: its value
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"a sibling key member holds {value!r}: only strings and integers")


def _check_unique(children: Sequence[Node], key: SiblingKey) -> None:
    seen: dict[KeyValues, str] = {}
    for child in children:
        values = key_values(child, key)
        if values in seen:
            raise key.clash(child, seen[values])
        seen[values] = child.resource_id


@functools.cache
def _field_names(model_type: type[BaseModel]) -> dict[str, str]:
    """Each member's field name, by its name on the wire."""
    return {field.alias or name: name for name, field in model_type.model_fields.items()}
