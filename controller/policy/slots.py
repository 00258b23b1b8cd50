"""The backend choice of a load-balancing rule: a slot table computed by the controller.

A host or mux hashes a flow (its 5-tuple, or the source address for ``SourceIP``
distribution) to a slot, ``hash % len(table)``, and sends it to the DIP the slot names. Every
host and every mux holds the same table, so they all pick the same DIP for the same flow, and
a host never has to agree with another about where a flow went.

The table has a prime number of slots (as Maglev's, so a flow hash spreads over all of them)
and each slot goes to the DIP with the highest weight for it, a keyed hash of the DIP and the
slot (rendezvous hashing, slot by slot). That makes the disruption of a change exact rather
than nearly minimal: a DIP that leaves (unhealthy, or out of the pool) loses exactly its slots,
which go to the others in proportion; a DIP that comes takes exactly the slots it now wins,
about 1/N of them; no other slot changes hands. The table depends only on the set of DIPs, so
a full compile and any sequence of incremental ones agree.

On the wire the table is ``dips`` (the addresses, in address order) and ``slots``, the base64
of one byte per slot (two, big-endian, beyond 255 DIPs) holding an index into ``dips``. With
``SMALL_TABLE`` = 1021 slots a rule of 10 DIPs costs about 1.5 KB; pools of more than
``SMALL_POOL`` DIPs get ``LARGE_TABLE`` = 4093 slots so each DIP keeps some 60 or more.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import struct
from collections.abc import Iterable, Sequence

SMALL_TABLE = 1021
LARGE_TABLE = 4093
SMALL_POOL = 64
# A weight is hash bits above the DIP's index, so the largest one names its DIP.
_INDEX_BITS = 16


def table_size(dips: int) -> int:
    return SMALL_TABLE if dips <= SMALL_POOL else LARGE_TABLE


def ordered(addresses: Iterable[str]) -> list[str]:
    """DIP addresses in address order (IPv4 before IPv6), each once."""
    return sorted(set(addresses), key=_address_order)


def _address_order(address: str) -> int:
    parsed = ipaddress.ip_address(address)
    return parsed.version * 2**128 + int(parsed)


def _weights(address: str, size: int) -> tuple[int, ...]:
    """The weights of one DIP for every slot: 64-bit words of an extendable-output hash of the
    DIP alone, so they do not depend on which other DIPs there are."""
    stream = hashlib.shake_256(address.encode()).digest(size * 8)
    return struct.unpack(f">{size}Q", stream)


def table(dips: Sequence[str], size: int | None = None) -> list[int]:
    """The slot table of ``dips`` (as ``ordered`` returns them): per slot, the index of its
    DIP; empty when there is no DIP."""
    return list(_table(tuple(dips), size or table_size(len(dips))))


def encoded(dips: Sequence[str]) -> str:
    """``encode(table(dips))``, remembered for recent sets of DIPs: a rule is recomputed
    far more often (something near it changed) than its DIPs change."""
    return _encoded(tuple(dips))


@functools.lru_cache(maxsize=8192)
def _encoded(dips: tuple[str, ...]) -> str:
    return encode(_table(dips, table_size(len(dips))), len(dips))


@functools.lru_cache(maxsize=256)
def _table(dips: tuple[str, ...], size: int) -> tuple[int, ...]:
    if not dips:
        return ()
    columns = [
        [weight << _INDEX_BITS | index for weight in _weights(dip, size)]
        for index, dip in enumerate(dips)
    ]
    low = (1 << _INDEX_BITS) - 1
    if len(columns) == 1:
        return (0,) * size
    return tuple(weight & low for weight in map(max, *columns))


def encode(slots: Sequence[int], dips: int) -> str:
    width = 1 if dips <= 256 else 2
    raw = b"".join(index.to_bytes(width, "big") for index in slots)
    return base64.b64encode(raw).decode("ascii")


def decode(text: str, dips: int) -> list[int]:
    raw = base64.b64decode(text)
    width = 1 if dips <= 256 else 2
    return [int.from_bytes(raw[i : i + width], "big") for i in range(0, len(raw), width)]
