"""``If-Match`` and ``If-None-Match`` of a write, checked against the etag of the aggregate
it will replace (NC's etags are the top-level resource's)."""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.paths import ResourcePath
from controller.errors import PreconditionFailed


@dataclass(frozen=True)
class Preconditions:
    """``If-Match`` / ``If-None-Match`` of a write, as sent."""

    if_match: str | None = None
    if_none_match: str | None = None


NO_PRECONDITIONS = Preconditions()


def check_preconditions(
    preconditions: Preconditions, exists: bool, etag: str | None, path: ResourcePath
) -> None:
    if preconditions.if_match is not None:
        if not exists:
            raise PreconditionFailed(
                f"If-Match was given but {path.ref} does not exist", target=path.ref
            )
        if not _etag_matches(preconditions.if_match, etag or ""):
            raise PreconditionFailed(
                f"{path.ref} has changed: its etag is {etag}, not {preconditions.if_match}",
                target=path.ref,
            )
    if_none_match = preconditions.if_none_match
    if if_none_match is not None and exists and _etag_matches(if_none_match, etag or ""):
        raise PreconditionFailed(f"{path.ref} already exists", target=path.ref)


def _etag_matches(header: str, etag: str) -> bool:
    """``If-Match`` may list several etags or ``*``; clients also send the bare GUID."""
    current = _opaque(etag)
    return any(
        candidate.strip() == "*" or _opaque(candidate) == current for candidate in header.split(",")
    )


def _opaque(etag: str) -> str:
    text = etag.strip()
    if text[:2].upper() == "W/":
        text = text[2:]
    return text.strip('"').lower()
