"""Roles of the northbound API's principals, each allowing what the one below it does.

* ``reader``: reads (GET, HEAD);
* ``operator``: every NBI write as well;
* ``admin``: credentials (tokens, certificates) and the audit log as well.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    READER = "reader"
    OPERATOR = "operator"
    ADMIN = "admin"


_RANK = {Role.READER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}
READ_METHODS = frozenset({"GET", "HEAD"})


def parse_role(text: str) -> Role:
    """``reader``, ``operator`` or ``admin`` in any casing; ValueError names the choices."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        choices = ", ".join(role.value for role in Role)
        raise ValueError(f"'{text}' is no role; the roles are {choices}") from None


def allows(held: Role, needed: Role) -> bool:
    return _RANK[held] >= _RANK[needed]


def highest(roles: object) -> Role | None:
    """The highest role among ``roles`` (a role name or a list of them, as an identity
    provider's claim holds them); names that are no role are ignored."""
    names = [roles] if isinstance(roles, str) else roles if isinstance(roles, list) else []
    found = [Role(name.lower()) for name in names if isinstance(name, str) and _is_role(name)]
    return max(found, key=_RANK.__getitem__, default=None)


def _is_role(name: str) -> bool:
    return name.lower() in Role._value2member_map_


def needed_role(method: str, path: str) -> Role:
    """The role a request needs: administration needs admin, writes operator, reads reader."""
    if path.lower().startswith("/admin/"):
        return Role.ADMIN
    return Role.READER if method.upper() in READ_METHODS else Role.OPERATOR
