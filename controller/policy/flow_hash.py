"""How a host picks the DIP of a flow it balances itself (pure): the Linux agent renders it in
nftables (``agent/linux/lb_tables.py``), the connectivity check predicts it (``trace.py``).

A host deals the healthy DIPs of a rule (``dips``, in address order) out over a table of its
own, ``host_slots(N)`` slots in turn, and sends a flow to the DIP of slot ``jhash(flow, seed)``
scaled to the table -- exactly what nftables' ``jhash <fields> mod <slots> seed <seed>``
computes in the kernel: the Jenkins hash (lookup3, as Linux's ``jhash()``) of the fields laid
out as nftables concatenates them (each in 4-byte registers, network byte order, zero
padding), then ``(hash * slots) >> 32``. A kernel test holds this prediction equal to the
slot the kernel picks for real packets.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

from controller import protocol

_MASK = 0xFFFFFFFF
_INITVAL = 0xDEADBEEF
# distribution (case-insensitive) -> the fields hashed, as the agent renders them.
FIELDS = {
    "default": ("saddr", "daddr", "l4proto", "sport", "dport"),
    "sourceip": ("saddr",),
    "sourceipprotocol": ("saddr", "l4proto"),
}
PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17}


def host_slots(dips: int) -> int:
    """The slots of a host's table of ``dips`` DIPs: at least eight per DIP, a power of two
    and at least 64, so the table (and the rule hashing into it) keeps its size while a pool
    shrinks or grows within it -- a DIP change is then a change of elements only."""
    return max(64, 8 * (1 << max(dips - 1, 0).bit_length()))


def host_table(dips: Sequence[str]) -> tuple[str, ...]:
    """Per slot, its DIP: dealt out in turn, so each holds as many as any other, give or
    take one."""
    return tuple(dips[slot % len(dips)] for slot in range(host_slots(len(dips)))) if dips else ()


def _rol(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _MASK ^ _rol(c, 4)
    c = (c + b) & _MASK
    b = (b - a) & _MASK ^ _rol(a, 6)
    a = (a + c) & _MASK
    c = (c - b) & _MASK ^ _rol(b, 8)
    b = (b + a) & _MASK
    a = (a - c) & _MASK ^ _rol(c, 16)
    c = (c + b) & _MASK
    b = (b - a) & _MASK ^ _rol(a, 19)
    a = (a + c) & _MASK
    c = (c - b) & _MASK ^ _rol(b, 4)
    b = (b + a) & _MASK
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c = (c ^ b) - _rol(b, 14) & _MASK
    a = (a ^ c) - _rol(c, 11) & _MASK
    b = (b ^ a) - _rol(a, 25) & _MASK
    c = (c ^ b) - _rol(b, 16) & _MASK
    a = (a ^ c) - _rol(c, 4) & _MASK
    b = (b ^ a) - _rol(a, 14) & _MASK
    return (c ^ b) - _rol(b, 24) & _MASK


def jhash(key: bytes, seed: int) -> int:
    """Linux's ``jhash(key, len(key), seed)`` (little-endian words, as on x86 and arm64)."""
    length = len(key)
    a = b = c = (_INITVAL + length + seed) & _MASK
    while length > 12:
        words = struct.unpack_from("<3I", key, len(key) - length)
        a, b, c = _mix((a + words[0]) & _MASK, (b + words[1]) & _MASK, (c + words[2]) & _MASK)
        length -= 12
    if length == 0:
        return c
    tail = key[len(key) - length :] + bytes(12 - length)
    words = struct.unpack("<3I", tail)
    return _final((a + words[0]) & _MASK, (b + words[1]) & _MASK, (c + words[2]) & _MASK)


def flow_key(
    distribution: str, source: str, destination: str, proto: str, sport: int, dport: int
) -> bytes:
    """The bytes nftables hashes for a flow: its fields in 4-byte registers."""
    values = {
        "saddr": ipaddress.IPv4Address(source).packed,
        "daddr": ipaddress.IPv4Address(destination).packed,
        "l4proto": bytes([PROTOCOL_NUMBERS[proto], 0, 0, 0]),
        "sport": struct.pack(">H", sport) + b"\0\0",
        "dport": struct.pack(">H", dport) + b"\0\0",
    }
    return b"".join(values[field] for field in FIELDS[distribution.lower()])


def host_choice(
    dips: Sequence[str],
    distribution: str,
    source: str,
    destination: str,
    proto: str,
    sport: int,
    dport: int,
) -> str:
    """The DIP a host sends this flow to (``dips``: the rule's healthy DIPs, address order;
    the ports are the flow's own: the frontend port, not the backend's)."""
    table = host_table(dips)
    key = flow_key(distribution, source, destination, proto, sport, dport)
    return table[(jhash(key, protocol.FLOW_HASH_SEED) * len(table)) >> 32]
