"""The policy compiler: from the northbound model to the keyed objects each host needs.

Pure: no I/O, no database, no clock, no settings. ``Compiler`` is fed committed changes
(``Change``) and answers per-host deltas, snapshots and resumes; ``full_compile`` recomputes
every host's policy from scratch, the reference the incremental path is tested against.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.policy.compiler import Change, Compiler, HostDelta
from controller.policy.objects import SCHEMA_VERSION, Body

__all__ = ["SCHEMA_VERSION", "Body", "Change", "Compiler", "HostDelta", "full_compile"]


def full_compile(changes: Iterable[Change], revision: int) -> dict[str, dict[str, Body]]:
    """Every host's objects, computed from scratch from the aggregates' current documents."""
    compiler = Compiler()
    compiler.load(changes, revision)
    hosts = {host for placed in compiler.objects.values() for host in placed.hosts}
    return {host: compiler.snapshot(host) for host in hosts}
