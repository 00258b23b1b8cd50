"""Kind names as an operator types them: the NBI collection in any casing
(``virtualnetworks``), its singular (``virtualNetwork``) or a short name (``vnet``)."""

from __future__ import annotations

from controller.resources import REGISTRY

SHORT_NAMES = {
    "acl": "accessControlLists",
    "cred": "credentials",
    "lb": "loadBalancers",
    "lbm": "loadBalancerManager",
    "ln": "logicalNetworks",
    "lnet": "logicalNetworks",
    "mux": "loadBalancerMuxes",
    "nic": "networkInterfaces",
    "pip": "publicIPAddresses",
    "rt": "routeTables",
    "vnet": "virtualNetworks",
}


def _names() -> dict[str, str]:
    names: dict[str, str] = {}
    for kind in REGISTRY.top_level:
        names[kind.name.lower()] = kind.name
        if kind.name.endswith("es") and kind.name[-3] in "sx":  # loadBalancerMuxes, ...Addresses
            names[kind.name[:-2].lower()] = kind.name
        elif kind.name.endswith("s"):
            names[kind.name[:-1].lower()] = kind.name
    names.update(SHORT_NAMES)
    return names


NAMES = _names()


def resolve(text: str) -> str:
    """The NBI collection name of ``text``; ValueError naming the choices when it is none."""
    found = NAMES.get(text.lower())
    if found is None:
        known = ", ".join(sorted(kind.name for kind in REGISTRY.top_level))
        raise ValueError(f"unknown kind '{text}'; one of: {known} (or nic, vnet, acl, lb, ...)")
    return found


def singleton_id(name: str) -> str | None:
    """The fixed id of a singleton kind (``loadBalancerManager/config``)."""
    kind = REGISTRY.top(name)
    return None if kind is None else kind.singleton_id
