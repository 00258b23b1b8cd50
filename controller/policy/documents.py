"""The documents the compiler reads, built in one place for every writer of the change log.

A committed write of an aggregate is recorded as its rows after the write (instanceId, kind,
resourceRef, properties, and the VSID a virtual subnet holds in its allocation); an agent's
report of its provider address as a document of its own, under an aggregate id derived from
the server's. The service records the first, the southbound the second, and a starting replica
rebuilds both from the tables: all of them build the documents here, so what the compiler reads
cannot differ between a follower and a fresh load.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from controller.policy.topology import DIP_HEALTH_KIND, PROVIDER_ADDRESS_KIND, SOURCE_ROOTS

Json = dict[str, Any]

__all__ = [
    "DIP_HEALTH_KIND",
    "PROVIDER_ADDRESS_KIND",
    "SOURCE_ROOTS",
    "DocumentRow",
    "aggregate_document",
    "dip_health_document",
    "dip_health_root",
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
