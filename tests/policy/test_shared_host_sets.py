"""The compiler's memory follows hosts and networks, not endpoints, for the host sets of
per-endpoint objects: every endpoint of a host is placed on one shared set, and every mapping
of that host's endpoints in a virtual network on one shared set of the network's other hosts
(at 100,000 endpoints a set of their own was 90 MiB). Loaded or built change by change alike."""

from __future__ import annotations

from controller.policy import Compiler, full_compile
from tests.policy.strategies import WEB, World, web_hosts

HOSTS = ("Host-A", "Host-B", "Host-C")
PER_HOST = 4


def _host_sets(compiler: Compiler, kind: str) -> dict[str, list[frozenset[str]]]:
    """The host set of every object of ``kind``, grouped by the endpoint's own host."""
    sets: dict[str, list[frozenset[str]]] = {}
    for placed in compiler.objects.values():
        if placed.wire.startswith(f"{kind}/"):
            own = placed.body["host"] if kind == "mapping" else next(iter(placed.hosts))
            sets.setdefault(own, []).append(placed.hosts)
    return sets


def _assert_shared(compiler: Compiler, hosts: int) -> None:
    for kind in ("endpoint", "mapping"):
        by_host = _host_sets(compiler, kind)
        assert len(by_host) == hosts, kind
        for own, sets in by_host.items():
            assert len(sets) == PER_HOST
            assert all(s is sets[0] for s in sets), f"{kind} sets of {own} are copies"
            assert (own in sets[0]) == (kind == "endpoint")
            assert len(sets[0]) == (1 if kind == "endpoint" else hosts - 1)


def test_loaded_and_incremental_compilers_share_host_sets_per_host() -> None:
    world = World()
    changes = [world.put_vnet(WEB), *web_hosts(world, HOSTS, PER_HOST)]
    loaded = Compiler()
    loaded.load(changes, world.revision)
    _assert_shared(loaded, len(HOSTS))

    built = Compiler()
    for change in changes:
        built.apply(change)
    _assert_shared(built, len(HOSTS))

    # A fourth host joins the network: every mapping's set changes, and is shared again.
    for change in web_hosts(world, ["Host-D"], PER_HOST, first=len(HOSTS)):
        built.apply(change)
    _assert_shared(built, len(HOSTS) + 1)
    ids = [world.instance_id(f"/servers/{h}") for h in (*HOSTS, "Host-D")]
    expected = full_compile(world.documents(), world.revision)
    assert {h: built.snapshot(h) for h in ids} == {h: expected.get(h, {}) for h in ids}
