"""The host's flow hash (``controller.policy.flow_hash``): Linux's jhash as nftables applies it.
The vectors are slots the kernel picked for real packets (``jhash ip saddr . ip daddr . meta
l4proto . th sport . th dport mod 64 seed 0x53444e43``, UDP 192.0.2.1 -> 192.0.2.2:9999 from
source ports 40000-40009); ``tests/agent/test_lb_dataplane.py`` checks ``host_choice``
against connections through the agent's own table."""

from __future__ import annotations

from collections import Counter

import pytest

from controller import protocol
from controller.policy.flow_hash import flow_key, host_slots, host_table, jhash

KERNEL_SLOTS = {40000: 60, 40001: 23, 40002: 22, 40003: 51, 40004: 60,
                40005: 1, 40006: 44, 40007: 21, 40008: 31, 40009: 37}  # fmt: skip


@pytest.mark.parametrize(("sport", "slot"), sorted(KERNEL_SLOTS.items()))
def test_the_slot_is_the_one_the_kernel_picked(sport: int, slot: int) -> None:
    key = flow_key("Default", "192.0.2.1", "192.0.2.2", "udp", sport, 9999)
    assert len(key) == 20  # five fields, each in a 4-byte register
    assert (jhash(key, protocol.FLOW_HASH_SEED) * 64) >> 32 == slot


def test_the_fields_follow_the_distribution() -> None:
    source_only = flow_key("SourceIP", "192.0.2.1", "192.0.2.2", "tcp", 1, 2)
    assert source_only == bytes([192, 0, 2, 1])
    with_protocol = flow_key("sourceIPProtocol", "192.0.2.1", "192.0.2.2", "tcp", 1, 2)
    assert with_protocol == bytes([192, 0, 2, 1, 6, 0, 0, 0])


def test_a_host_table_deals_the_dips_out_evenly() -> None:
    dips = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    table = host_table(dips)
    assert len(table) == host_slots(3) == 64
    assert sorted(Counter(table).values()) == [21, 21, 22]
    assert host_table([]) == ()
