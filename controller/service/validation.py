"""The checks a write runs over the nodes it writes that need nothing but those nodes: each
kind's own ``validate``, and each child kind's ``sibling_key``, ``sibling_accord`` and
``sibling_claims`` among the children of one parent. Pure, so a big aggregate's checks run
on the heavy-work thread."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import orjson
from pydantic import BaseModel

from controller.core.kinds import SiblingAccord, SiblingClaims, SiblingKey
from controller.core.refs import ResourceRef
from controller.core.tree import Node

# A sibling key's values as the stored documents hold them: strings (an enumeration's value,
# a lower-cased resourceRef) and integers.
KeyValues = tuple[str | int, ...]
# The ``sibling_key`` column's width: a longer key is stored as its digest.
KEY_TEXT_MAX = 256


def validate_nodes(nodes: Sequence[Node]) -> None:
    """Each kind's checks of its nodes, then the sibling keys, accords and claims
    (``InvalidInput`` names what is wrong; of two children sharing a key, the later one)."""
    for node in nodes:
        if node.kind.validate is not None:
            node.kind.validate(node)
    for node in nodes:
        claims: list[SiblingClaims] = []  # one check for the kinds that share them
        for children in node.children.values():
            kind = children[0].kind if children else None
            if kind is not None and kind.sibling_key is not None:
                _check_unique(children, kind.sibling_key)
            if kind is not None and (accord := kind.sibling_accord) is not None:
                check_accord(node, accord, accord_values(children, accord))
            if kind is not None and (made := kind.sibling_claims) and made not in claims:
                claims.append(made)
        for shared in claims:
            shared.check([child for name in shared.kinds for child in node.kids(name)])


def key_values(node: Node, key: SiblingKey) -> KeyValues | None:
    """The key ``node`` holds: its ``values``, or the values of ``key``'s members in its
    properties."""
    if key.values is not None:
        return key.values(node)
    names = _field_names(type(node.model))
    return tuple(_key_value(getattr(node.model, names[member])) for member in key.members)


def sibling_key_text(node: Node) -> str | None:
    """What the ``sibling_key`` column holds for ``node``: its key's values as JSON text, or
    the text's digest when it is too long for the column (a subnet's resourceRef can be)."""
    key = node.kind.sibling_key
    values = None if key is None else key_values(node, key)
    return None if values is None else key_text(values)


def key_text(values: KeyValues) -> str:
    text = orjson.dumps(values).decode()
    if len(text) <= KEY_TEXT_MAX:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def accord_values(children: Sequence[Node], accord: SiblingAccord) -> set[str]:
    """What ``children`` hold of what they must agree on."""
    names = _field_names(type(children[0].model)) if children else {}
    found = set()
    for child in children:
        ref = getattr(child.model, names[accord.member])
        value = accord.value(ref.resource_ref.lower()) if isinstance(ref, ResourceRef) else None
        if value is not None:
            found.add(value)
    return found


def check_accord(parent: Node, accord: SiblingAccord, values: set[str]) -> None:
    if len(values) > 1 and not accord.waived(parent):
        raise accord.clash(parent)


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
        if values is None:
            continue
        if values in seen:
            raise key.clash(child, seen[values])
        seen[values] = child.resource_id


@functools.cache
def _field_names(model_type: type[BaseModel]) -> dict[str, str]:
    """Each member's field name, by its name on the wire."""
    return {field.alias or name: name for name, field in model_type.model_fields.items()}
