"""Test support for the southbound channel: a controller served in-process over a real socket,
host agents (the real session client) that remember what they were sent, a raw protocol
client, a small fabric of hosts, virtual networks and NICs, and the policy a brand-new replica
computes, to compare agents' state with.

Everything runs in the test's event loop: the in-process controller is a uvicorn server task,
so a test can also look at its southbound runtime (``controller.southbound``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from controller import protocol
from controller.agent.session import AgentSession, AgentState, Body, Failure
from controller.api.connection import GuardedHttpProtocol
from controller.api.limits import Admission
from controller.app import create_app
from controller.server import build_config
from controller.settings import Settings
from controller.southbound.admin import agent_token
from controller.southbound.runtime import Southbound
from controller.store.agents import AgentRepository
from controller.store.changes import ChangeLog
from controller.store.database import Database
from tests.support.bodies import (
    acl,
    acl_rule,
    connection,
    credential,
    ip_configuration,
    nic,
    provider_network,
    ref,
    server,
    virtual_network,
    virtual_subnet,
)
from tests.support.nbi import PS_HEADERS, Json, get, put, url
from tests.support.postgres import free_port

Message = dict[str, Any]
# Short beats, so that tests about bookmarks and reconnections take fractions of seconds.
FAST = {"change_poll_interval": 0.2, "bookmark_interval": 0.3}
FAST_ENV = {"SDNC_CHANGE_POLL_INTERVAL": "0.2", "SDNC_BOOKMARK_INTERVAL": "0.3"}
# How long stopping the in-process controller or the agents may take.
STOP_TIMEOUT = 30.0


# How long waits for an event (an ack applied, a state written) may take by default: they
# end as soon as it happens, so a generous bound costs nothing but keeps a loaded machine green.
EVENT_BOUND = 30.0


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    within: float = EVENT_BOUND,
    what: str = "the condition",
) -> None:
    """Poll ``check`` (sync or async) until it is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within} s")
        await asyncio.sleep(0.02)


# -- the controller, in-process ------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the test runner keeps Ctrl-C."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@dataclass
class InProcessController:
    app: FastAPI
    base_url: str
    http: httpx.AsyncClient  # paths as tests.support.nbi takes them
    server: uvicorn.Server

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def admission(self) -> Admission:
        """The server's count of open connections (controller/api/limits.py)."""
        protocol = self.server.config.http_protocol_class
        assert issubclass(protocol, GuardedHttpProtocol)
        return protocol.admission

    @property
    def southbound(self) -> Southbound:
        southbound: Southbound = self.app.state.southbound
        return southbound


@contextlib.asynccontextmanager
async def in_process_controller(settings: Settings) -> AsyncIterator[InProcessController]:
    """The app served by uvicorn on a free port of 127.0.0.1, in this event loop, configured as
    ``sdnc serve`` configures it."""
    app = create_app(settings)
    port = free_port()
    # uvicorn's logs go to the root logger (no config of its own), where ``caplog`` sees them.
    config = build_config(
        app, settings, host="127.0.0.1", port=port, log_level="warning", own_logging=False
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(), name=f"controller-{port}")
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the controller stopped while starting")
        if time.monotonic() > deadline:
            raise RuntimeError("the controller did not start")
        await asyncio.sleep(0.01)
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            yield InProcessController(app, base_url, http, server)
    finally:
        server.should_exit = True
        async with asyncio.timeout(STOP_TIMEOUT):
            await task


# -- agents ----------------------------------------------------------------------------------


@dataclass
class RecordingDataplane:
    """Applies to memory and remembers every apply; ``fail`` names objects it cannot apply;
    while ``gate`` is cleared, ``apply`` waits (a host whose dataplane is stuck)."""

    fail: Callable[[str], bool] = lambda key: False
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    applies: list[tuple[dict[str, Body], list[str]]] = field(default_factory=list)
    reports_all_failures: bool = False

    def __post_init__(self) -> None:
        self.gate.set()

    async def apply(
        self, desired: dict[str, Body], upserts: dict[str, Body], deletes: Sequence[str]
    ) -> list[Failure]:
        await self.gate.wait()
        self.applies.append((dict(upserts), list(deletes)))
        return [
            Failure(key, "PolicyConfigurationFailure", "cannot")
            for key in upserts
            if self.fail(key)
        ]

    def upserted(self) -> set[str]:
        """Every key this dataplane was ever given to apply."""
        return {key for upserts, _ in self.applies for key in upserts}


class RecordingAgent(AgentSession):
    """The real agent session; ``messages`` keeps each message it handled, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: list[Message] = []

    async def _handle(self, websocket: ClientConnection, message: protocol.Message) -> None:
        self.messages.append(message)
        await super()._handle(websocket, message)

    def kinds(self) -> list[str]:
        return [
            "resume" if m.get("resume") else str(m["type"])
            for m in self.messages
            if m["type"] != protocol.BOOKMARK
        ]

    @property
    def dataplane_log(self) -> RecordingDataplane:
        dataplane = self.dataplane
        assert isinstance(dataplane, RecordingDataplane)
        return dataplane


class Agents:
    """Agent sessions running as tasks of this event loop; ``close`` stops them all."""

    def __init__(self, controllers: Sequence[str]) -> None:
        self.controllers = list(controllers)
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def start(
        self,
        server_id: str,
        token: str,
        *,
        provider_address: str | None = None,
        dataplane: RecordingDataplane | None = None,
        state: AgentState | None = None,
        controllers: Sequence[str] | None = None,
        ping_interval: float = 10.0,
    ) -> RecordingAgent:
        agent = RecordingAgent(
            controllers or self.controllers,
            server_id,
            token,
            dataplane or RecordingDataplane(),
            provider_address=provider_address,
            state=state,
            ping_interval=ping_interval,
            max_backoff=0.2,
        )
        self._tasks[id(agent)] = asyncio.create_task(agent.run(), name=f"agent-{server_id}")
        return agent

    async def stop(self, agent: RecordingAgent) -> None:
        task = self._tasks.pop(id(agent))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        agent.connected.clear()

    async def close(self) -> None:
        """Stop every agent; the first error one of them ended with is raised once all have
        stopped."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        async with asyncio.timeout(STOP_TIMEOUT):
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, asyncio.CancelledError
            ):
                raise outcome


async def applied(agent: AgentSession, revision: int, within: float = EVENT_BOUND) -> None:
    await eventually(
        lambda: agent.state.applied_revision >= revision,
        within,
        f"agent of {agent.server} applying revision {revision}",
    )


# -- the raw protocol --------------------------------------------------------------------------


def channel_url(base_url: str, server_id: str) -> str:
    return f"ws://{base_url.split('://', 1)[1]}/southbound/v1/servers/{server_id}/channel"


@contextlib.asynccontextmanager
async def channel(
    base_url: str,
    server_id: str,
    token: str | None,
    *,
    scheme: str = "Bearer",
    local_address: str | None = None,
) -> AsyncIterator[ClientConnection]:
    """A WebSocket to the channel of ``server_id`` (no hello sent yet), from ``local_address``
    (a loopback address) if given."""
    headers = {} if token is None else {"Authorization": f"{scheme} {token}"}
    local = {"local_addr": (local_address, 0)} if local_address else {}
    async with connect(
        channel_url(base_url, server_id), additional_headers=headers, open_timeout=10, **local
    ) as websocket:
        yield websocket


async def say_hello(
    websocket: ClientConnection,
    server_id: str,
    applied_revision: int,
    *,
    provider_address: str | None = None,
) -> None:
    hello = protocol.hello(server_id, applied_revision, provider_address=provider_address)
    await websocket.send(protocol.encode(hello))


async def receive(websocket: ClientConnection, within: float = 10.0) -> Message:
    async with asyncio.timeout(within):
        return protocol.decode(await websocket.recv())


async def receive_policy(websocket: ClientConnection, within: float = 10.0) -> Message:
    """The next message that is not a bookmark."""
    async with asyncio.timeout(within):
        while True:
            message = protocol.decode(await websocket.recv())
            if message["type"] != protocol.BOOKMARK:
                return message


async def closed_by_the_controller(websocket: ClientConnection, within: float = 10.0) -> bool:
    """Whether the controller closes ``websocket`` within ``within`` seconds (bookmarks may
    come before); any other message is a failure."""
    try:
        async with asyncio.timeout(within):
            while True:
                message = protocol.decode(await websocket.recv())
                assert message["type"] == protocol.BOOKMARK, message
    except ConnectionClosed:
        return True
    except TimeoutError:
        return False


# -- the fabric ----------------------------------------------------------------------------------

VNET_BLUE = "/virtualNetworks/blue"
BLUE_WEB = f"{VNET_BLUE}/subnets/web"
VNET_RED = "/virtualNetworks/red"
RED_DB = f"{VNET_RED}/subnets/db"
WEB_ACL = "/accessControlLists/web"
HOSTS = ("hostA", "hostB", "hostC")
PROVIDER = {"hostA": "10.10.56.11", "hostB": "10.10.56.12", "hostC": "10.10.56.13"}


@dataclass
class Fabric:
    """What ``build_fabric`` created: instanceIds by resourceId."""

    servers: dict[str, str]  # hostA -> instanceId
    configs: dict[str, str]  # NIC resourceId -> instanceId of its one ipConfiguration
    subnets: dict[str, str]  # subnet path -> instanceId
    acls: dict[str, str]  # ACL path -> instanceId

    def endpoint(self, nic_id: str) -> str:
        return f"endpoint/{self.configs[nic_id]}"

    def mapping(self, nic_id: str) -> str:
        return f"mapping/{self.configs[nic_id]}"

    def host(self, server_id: str) -> str:
        return f"host/{self.servers[server_id]}"

    def network(self, subnet: str) -> str:
        return f"network/{self.subnets[subnet]}"

    def acl(self, path: str) -> str:
        return f"acl/{self.acls[path]}"


def placed_nic(server_id: str, subnet: str, address: str, mac: str, **properties: object) -> Json:
    """A tenant NIC on ``server_id`` with one ipConfiguration ``ip`` at ``address``."""
    return nic(
        ip_configuration("ip", subnet, address, **properties),
        privateMacAddress=mac,
        server=ref(f"/servers/{server_id}"),
    )


async def build_fabric(http: httpx.AsyncClient) -> Fabric:
    """Hosts A, B and C; virtual network blue (subnet web) with NIC a1 on A (using ACL web)
    and b1 on B; virtual network red (subnet db) with c1 on C."""
    await put(http, "/credentials/cert", credential("X509Certificate", value="AB12"))
    servers = {}
    for host in HOSTS:
        created = await put(
            http, f"/servers/{host}", server(connection("/credentials/cert", address=host))
        )
        servers[host] = created["instanceId"]
    await put(http, "/logicalNetworks/HNVPA", provider_network())
    created_acl = await put(http, WEB_ACL, acl(acl_rule("r1", 100)))
    await put(http, VNET_BLUE, virtual_network(virtual_subnet("web", "24.30.1.0/24")))
    await put(
        http,
        VNET_RED,
        virtual_network(virtual_subnet("db", "10.1.1.0/24"), prefixes=("10.1.0.0/16",)),
    )
    subnets = {path: (await get(http, path))["instanceId"] for path in (BLUE_WEB, RED_DB)}
    configs = {}
    for nic_id, body in (
        (
            "a1",
            placed_nic(
                "hostA", BLUE_WEB, "24.30.1.10", "00155D000A01", accessControlList=ref(WEB_ACL)
            ),
        ),
        ("b1", placed_nic("hostB", BLUE_WEB, "24.30.1.20", "00155D000B01")),
        ("c1", placed_nic("hostC", RED_DB, "10.1.1.30", "00155D000C01")),
    ):
        await put(http, f"/networkInterfaces/{nic_id}", body)
        configs[nic_id] = (await get(http, f"/networkInterfaces/{nic_id}/ipConfigurations/ip"))[
            "instanceId"
        ]
    return Fabric(servers, configs, subnets, {WEB_ACL: created_acl["instanceId"]})


async def tokens(database: Database, servers: Sequence[str] = HOSTS) -> dict[str, str]:
    found = {}
    for server_id in servers:
        token = await agent_token(database, server_id)
        assert token is not None, server_id
        found[server_id] = token
    return found


async def revision_of(database: Database) -> int:
    """The last committed revision."""

    async def read(connection: AsyncConnection) -> int:
        return await ChangeLog(connection, is_postgres=database.is_postgres).current()

    return await database.run(read, write=False)


async def southbound_status(base_url: str) -> Json:
    """``GET /southbound/v1/status`` of the replica at ``base_url``."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.get("/southbound/v1/status")
    assert response.status_code == 200, response.text
    status: Json = response.json()
    return status


async def status_written(base_url: str, within: float = EVENT_BOUND) -> None:
    """Wait until the replica at ``base_url`` has written to the database every agent status
    it held when this was called: two more flushes of its status board (the first may have
    begun before the call)."""
    seen = int((await southbound_status(base_url))["statusFlushes"])

    async def flushed() -> bool:
        return int((await southbound_status(base_url))["statusFlushes"]) >= seen + 2

    await eventually(flushed, within, f"two status flushes of the replica at {base_url}")


async def recorded_revision(database: Database, server_instance_id: str) -> int:
    """The applied revision the database holds for the agent of a server (0 if none)."""

    async def read(connection: AsyncConnection) -> int:
        agents = AgentRepository(connection, is_postgres=database.is_postgres)
        server = uuid.UUID(server_instance_id)
        found = (await agents.states([server])).get(server)
        return 0 if found is None else found.applied_revision

    return await database.run(read, write=False)


async def put_waiting(
    http: httpx.AsyncClient, path: str, body: object, *, within: float = EVENT_BOUND
) -> httpx.Response:
    """PUT with ``?wait=applied&timeout=within``; the response, unchecked."""
    return await http.put(
        f"{url(path)}?wait=applied&timeout={within:g}",
        content=orjson.dumps(body),
        headers=PS_HEADERS,
    )


async def reference_policy(database: Database) -> tuple[int, Callable[[str], dict[str, Body]]]:
    """What a brand-new replica computes from the current documents: (its revision, the
    snapshot of a host by server instanceId)."""
    fresh = Southbound(database)
    await fresh.start()
    try:
        revision = fresh.compiler.revision
        snapshots = {
            host: fresh.compiler.snapshot(host) for host in set(fresh.compiler.model.server_keys)
        }
    finally:
        await fresh.stop()
    return revision, lambda host: snapshots.get(host, {})


async def as_a_fresh_replica_computes(
    controller: InProcessController, database: Database, servers: Iterable[str]
) -> dict[str, dict[str, Body]]:
    """Once ``controller`` has compiled the last change, the snapshot of each host of
    ``servers`` (instanceIds), which must be what a brand-new replica computes from the
    stored documents."""
    revision = await revision_of(database)
    await eventually(lambda: controller.southbound.compiler.revision >= revision)
    _, reference = await reference_policy(database)
    compiler = controller.southbound.compiler
    snapshots = {server: compiler.snapshot(server) for server in servers}
    assert snapshots == {server: reference(server) for server in snapshots}
    return snapshots
