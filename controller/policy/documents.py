"""The documents the compiler reads, built in one place for every writer of the change log.

A committed write of an aggregate is recorded as its rows after the write (instanceId, kind,
resourceRef, properties, and the VSID a virtual subnet holds in its allocation), or, when the
aggregate existed before and its kind allows (``patchable``), as a *patch*: the rows the write
inserted or rewrote and the keys of those it removed, so that one rule added to a 10,000-rule
ACL is recorded, read and compiled as one rule. An agent's report of its provider address is
a document of its own, under an aggregate id derived from the server's. The service records
the first, the southbound the second, and a starting replica rebuilds both from the tables:
all of them build the documents here, so what the compiler reads cannot differ between a
follower and a fresh load.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from controller.policy.topology import (
    DIP_HEALTH_KIND,
    PROVIDER_ADDRESS_KIND,
    SOURCE_ROOTS,
    patchable,
)

Json = dict[str, Any]

__all__ = [
    "DIP_HEALTH_KIND",
    "PROVIDER_ADDRESS_KIND",
    "SOURCE_ROOTS",
    "DocumentRow",
    "aggregate_document",
    "dip_health_document",
    "dip_health_root",
    "is_patch",
    "patch_document",
    "patchable",
    "provider_address_document",
    "provider_address_root",
]


@dataclass(frozen=True)
class DocumentRow:
    """One resource of an aggregate, as the compiler reads it."""

    instance_id: uuid.UUID
    kind: str
    resource_ref: str
    properties: Json
    vsid: int | None = None


def aggregate_document(rows: Iterable[DocumentRow]) -> Json:
    return {
        "rows": [
            {
                "id": str(row.instance_id),
                "kind": row.kind,
                "ref": row.resource_ref,
                "properties": row.properties,
                **({"vsid": row.vsid} if row.vsid is not None else {}),
            }
            for row in rows
        ]
    }


def patch_document(rows: Iterable[DocumentRow], removed: Iterable[str]) -> Json:
    """A write of an aggregate the compiler holds already, as what it changed: ``rows``
    inserted or rewritten, and the lower-cased resourceRefs of the rows ``removed`` (each
    one's descendants named too)."""
    return aggregate_document(rows) | {"removed": sorted(removed)}


def is_patch(document: Json) -> bool:
    return "removed" in document


def provider_address_root(server: uuid.UUID) -> uuid.UUID:
    """The aggregate id under which a server's reported provider address is kept."""
    return uuid.uuid5(server, "provider-address")


def provider_address_document(server_ref: str, address: str) -> Json:
    return {"server": server_ref, "address": address}


def dip_health_root(dip: uuid.UUID, probe: uuid.UUID) -> uuid.UUID:
    """The aggregate id under which the health of a DIP (ipConfiguration) under a probe is
    kept: one per pair, whichever host reported it."""
    return uuid.uuid5(dip, f"health:{probe}")


def dip_health_document(server_ref: str, probe: uuid.UUID, dip: uuid.UUID, state: str) -> Json:
    return {"server": server_ref, "probe": str(probe), "dip": str(dip), "state": state}
