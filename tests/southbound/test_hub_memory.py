"""What the hub keeps is the size of what it sends: each object's encoding is cached for as
long as the object lives and every frame waits in a session's queue, so neither may carry the
encoder's slack (orjson hands out its output in a buffer of at least 4 KiB: at 200,000
objects, 750 MiB of nothing)."""

from __future__ import annotations

import gc
import tracemalloc
import uuid

from controller import protocol
from controller.policy import Compiler
from controller.southbound.follower import Follower
from controller.southbound.hub import Hub, Session
from controller.southbound.status import StatusBoard
from controller.store.database import Database
from tests.policy.strategies import WEB, NicWrite, World, web_hosts

HOSTS = [f"Host-{n}" for n in range(4)]
PER_HOST = 100
# Never connected to: the board is only handed to the hub.
NOWHERE = "postgresql+psycopg://sdnc@127.0.0.1:1/sdnc"


def _compiler(world: World) -> Compiler:
    compiler = Compiler()
    compiler.load([world.put_vnet(WEB), *web_hosts(world, HOSTS, PER_HOST)], world.revision)
    return compiler


async def _send(_: bytes) -> None:
    return None


def test_snapshots_and_cached_encodings_hold_what_they_send() -> None:
    world = World()
    compiler = _compiler(world)
    hub = Hub(compiler, StatusBoard(Database(NOWHERE), "replica-1"))
    servers = [uuid.UUID(world.instance_id(f"/servers/{h}")) for h in HOSTS]
    sessions = [Session(server, _send) for server in servers]
    gc.collect()
    tracemalloc.start()
    try:
        for session in sessions:
            assert hub.attach(session, 0) == "snapshot"
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    frames = [session.queue.get_nowait() for session in sessions]
    sent = sum(len(frame) for frame in frames if frame is not None)
    objects = len(compiler.objects)
    assert objects > len(HOSTS) * PER_HOST * 2  # endpoints and mappings
    # The frames, each object's encoding once more, and a few hundred bytes of bookkeeping
    # per object (its cache entry, the session's dicts while the frame was built).
    assert held < 2 * sent + 400 * objects, (held, sent, objects)


def test_an_encoded_message_holds_its_own_size() -> None:
    messages = [{"type": protocol.BOOKMARK, "revision": n} for n in range(1000)]
    tracemalloc.start()
    try:
        frames = [protocol.encode(message) for message in messages]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 150 * len(frames), held  # ~33-byte frames: 4 KiB each before
    assert frames[7] == b'{"type":"bookmark","revision":7}'


def test_the_encoding_of_an_object_that_is_gone_is_dropped() -> None:
    """Containers come and go for as long as the replica runs: what was cached for an
    endpoint must not outlive it."""
    world = World()
    compiler = _compiler(world)
    database = Database(NOWHERE)
    hub = Hub(compiler, StatusBoard(database, "replica-1"))
    for host in HOSTS:
        hub.attach(Session(uuid.UUID(world.instance_id(f"/servers/{host}")), _send), 0)
    cached = set(hub._fragments)
    assert cached == {placed.wire for placed in compiler.objects.values()}

    follower = Follower(database, compiler, hub)
    follower._apply(world.put_nic(NicWrite("Nic0", HOSTS[0], configs=())))
    gone = cached - {placed.wire for placed in compiler.objects.values()}
    assert len(gone) == 2 * PER_HOST  # the endpoints of Nic0, and their mappings
    assert set(compiler.vanished) == gone
    assert not gone & set(hub._fragments)
