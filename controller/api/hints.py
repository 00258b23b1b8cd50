"""What a client that got the URI or the method wrong is told: which resource type it likely
meant, and which methods the URI has (the ``Allow`` header of a 405)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from controller.core.kinds import Kind, Registry

NBI_ROOT = "/networking/v1"


def path_hint(registry: Registry, path: str, words: Iterable[str] = ()) -> str:
    """Why ``path`` names nothing, as precisely as can be told: the first segment that is no
    resource type (with the closest one when there is one), or where the NBI lives."""
    parts = path.split("/")
    if len(parts) < 3 or parts[1].lower() != "networking":
        return f"no resource or collection at this URI; the API is under {NBI_ROOT}/"
    segments = [segment for segment in parts[3:] if segment]
    fixed = {word.lower() for word in words}
    if segments and segments[0].lower() in fixed:
        return "no diagnostics operation or result at this URI"
    parent: Kind | None = None
    for index, segment in enumerate(segments):
        if index % 2:
            continue
        kind = registry.top(segment) if parent is None else registry.child(parent, segment)
        if kind is None:
            return _unknown_type(registry, segment, parent)
        parent = kind
    return "no resource or collection at this URI"


def _unknown_type(registry: Registry, segment: str, parent: Kind | None) -> str:
    kinds = registry.top_level if parent is None else registry.children_of(parent)
    names = {name.lower(): kind.name for kind in kinds for name in (kind.name, *kind.uri_aliases)}
    close = difflib.get_close_matches(segment.lower(), list(names), n=1, cutoff=0.7)
    where = "here" if parent is None else f"under {parent.name}"
    message = f"'{segment}' is no resource type {where}"
    if close:
        return f"{message}; did you mean '{names[close[0]]}'?"
    known = ", ".join(sorted({kind.name for kind in kinds}))
    return f"{message}; {'the types are' if parent is None else 'its children are'}: {known}"


METHODS = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """The methods some route answers at the request's path (asked of the routes themselves,
    included routers too), in a stable order."""
    allowed = []
    for method in METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed
