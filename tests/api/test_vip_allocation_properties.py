"""VIP allocation as a property: random sequences of public IP, load balancer and NIC operations
against the real API (in process, on the test database), checked after every step against a
model of who holds which address.

Three subnets hand out addresses: a public VIP pool (public IPs and frontends), a private VIP
pool (frontends) and a virtual subnet (internal load balancer frontends and NICs, which compete
for the same addresses). Operations: create a public IP (Dynamic or Static), create a load
balancer with up to three frontends, create a NIC, move one frontend of a load balancer to
another subnet or address, re-PUT a load balancer as GET shows it (or without its Dynamic
addresses), delete anything. The model predicts every outcome: 400 for a Static address that
is no VIP of its subnet (or asked twice in one body), 409 IpAddressInUse when someone else
holds it, 409 IpAddressExhausted exactly when fewer addresses are free than Dynamic requests.
After every step:

* every holder shows the address the model has for it;
* no address is held twice in a subnet, and each is one its subnet hands out;
* the allocation rows of each subnet are exactly the holders' addresses (none leaked, none
  lost), the ipPools' usage counts them, and ``vipPoolsInUse`` names the pools holding VIPs.

Every example starts from an empty database and its own app.
"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.app import create_app
from controller.settings import Settings
from controller.store.allocations import ADDRESSES, AllocationRepository
from controller.store.database import Database
from tests.support.bodies import (
    ip_configuration,
    ip_pool,
    logical_network,
    logical_subnet,
    mac_pool,
    nic,
    provider_network,
    virtual_network,
    virtual_subnet,
)
from tests.support.nbi import assert_error, get, put, put_raw, refs, serve, url
from tests.support.slb import frontend, load_balancer, manager, public_ip
from tests.support.store import empty

Json = dict[str, Any]


@dataclass(frozen=True)
class Source:
    path: str
    vips: frozenset[str]  # what it hands out
    refused: frozenset[str]  # Static addresses it refuses with a 400
    pool: str | None = None

    @property
    def static_choices(self) -> list[str]:
        return sorted(self.vips | self.refused, key=ipaddress.ip_address)


def _hosts(prefix: str, first: int, last: int) -> frozenset[str]:
    return frozenset(f"{prefix}.{h}" for h in range(first, last + 1))


PUBLIC = Source(
    "/logicalNetworks/pub/subnets/s",
    _hosts("41.40.40", 8, 13),
    frozenset({"41.40.40.1", "41.40.40.20"}),  # the gateway; in the subnet, in no pool
    "/logicalNetworks/pub/subnets/s/ipPools/p",
)
PRIVATE = Source(
    "/logicalNetworks/priv/subnets/s",
    _hosts("20.20.20", 8, 10),
    frozenset({"20.20.20.0", "20.20.20.11"}),
    "/logicalNetworks/priv/subnets/s/ipPools/p",
)
INTERNAL = Source(
    "/virtualNetworks/vnet/subnets/s",
    _hosts("24.30.2", 2, 6),
    frozenset({"24.30.2.0", "24.30.2.1", "24.30.2.7"}),
)
SOURCES = (PUBLIC, PRIVATE, INTERNAL)


# -- operations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatePublicIp:
    static: int | None


@dataclass(frozen=True)
class CreateLb:
    frontends: tuple[tuple[int, int | None], ...]  # (source, static choice)


@dataclass(frozen=True)
class CreateNic:
    static: int | None


@dataclass(frozen=True)
class MoveFrontend:
    lb: int
    frontend: int
    source: int
    static: int | None


@dataclass(frozen=True)
class ReputLb:
    lb: int
    echo: bool


@dataclass(frozen=True)
class Delete:
    index: int


Operation = CreatePublicIp | CreateLb | CreateNic | MoveFrontend | ReputLb | Delete

# Dynamic two times out of three.
choice = st.one_of(st.none(), st.none(), st.integers(min_value=0, max_value=15))
source_index = st.integers(min_value=0, max_value=len(SOURCES) - 1)
pick = st.integers(min_value=0, max_value=31)
create_public_ip = st.builds(CreatePublicIp, choice)
create_lb = st.builds(
    CreateLb, st.lists(st.tuples(source_index, choice), min_size=1, max_size=3).map(tuple)
)
create_nic = st.builds(CreateNic, choice)
move_frontend = st.builds(MoveFrontend, pick, pick, source_index, choice)
# Creations weigh more than deletions, so the sources fill up and run out often.
operations: st.SearchStrategy[Operation] = st.one_of(
    create_public_ip,
    create_public_ip,
    create_lb,
    create_lb,
    create_lb,
    create_nic,
    create_nic,
    move_frontend,
    move_frontend,
    st.builds(ReputLb, pick, st.booleans()),
    st.builds(Delete, pick),
)


# -- the model --------------------------------------------------------------------------------


@dataclass
class Model:
    # holder resourceRef -> (source, address)
    held: dict[str, tuple[Source, str]] = field(default_factory=dict)
    # top-level resources -> the holders they contain
    resources: dict[str, list[str]] = field(default_factory=dict)
    serial: int = 0

    def fresh(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def addresses(self, source: Source, *, but: str | None = None) -> set[str]:
        return {a for h, (s, a) in self.held.items() if s == source and h != but}

    def free(self, source: Source) -> int:
        return len(source.vips - self.addresses(source))

    def pick(self, index: int, prefix: str = "/") -> str | None:
        names = sorted(r for r in self.resources if r.startswith(prefix))
        return names[index % len(names)] if names else None


def static_refusal(
    model: Model, source: Source, address: str, holder: str | None = None
) -> tuple[int, str] | None:
    if address in source.refused:
        return 400, "InvalidInput"
    if address in model.addresses(source, but=holder):
        return 409, "IpAddressInUse"
    return None


# -- one example ------------------------------------------------------------------------------


class Run:
    def __init__(self, client: httpx.AsyncClient, database: Database) -> None:
        self.client = client
        self.database = database
        self.model = Model()
        self.subnet_ids: dict[str, uuid.UUID] = {}

    async def setup(self) -> None:
        await put(self.client, "/macPools/m", mac_pool("00-1D-D8-B9-00-00", "00-1D-D8-B9-00-FF"))
        await put(self.client, "/logicalNetworks/HNVPA", provider_network())
        vnet = virtual_network(virtual_subnet("s", "24.30.2.0/29"), prefixes=("24.30.0.0/16",))
        await put(self.client, "/virtualNetworks/vnet", vnet)
        for name, prefix, low, high, public in (
            ("pub", "41.40.40", 8, 13, True),
            ("priv", "20.20.20", 8, 10, False),
        ):
            pool = ip_pool("p", f"{prefix}.{low}", f"{prefix}.{high}")
            subnet = logical_subnet(
                "s", f"{prefix}.0/27", pool, isPublic=public, defaultGateways=[f"{prefix}.1"]
            )
            await put(self.client, f"/logicalNetworks/{name}", logical_network(subnet))
        await put(self.client, "/loadBalancerManager/config", manager(PUBLIC.pool, PRIVATE.pool))
        for source in SOURCES:
            found = await get(self.client, source.path)
            self.subnet_ids[source.path] = uuid.UUID(found["instanceId"])

    async def apply(self, operation: Operation) -> None:
        match operation:
            case CreatePublicIp(static):
                await self.create_public_ip(static)
            case CreateLb(frontends):
                await self.create_lb(frontends)
            case CreateNic(static):
                await self.create_nic(static)
            case MoveFrontend(lb, index, source, static):
                await self.move_frontend(lb, index, SOURCES[source], static)
            case ReputLb(lb, echo):
                await self.reput_lb(lb, echo)
            case Delete(index):
                await self.delete(index)

    def expect(
        self, response: httpx.Response, refusal: tuple[int, str] | None, member: str
    ) -> bool:
        """Whether the model refuses the request, and then the response is that refusal."""
        if refusal is None:
            return False
        status, code = refusal
        assert_error(response, status, code, member)
        event(f"refused: {status} {code}")
        return True

    async def create_public_ip(self, static: int | None) -> None:
        path = f"/publicIPAddresses/{self.model.fresh('pip')}"
        wanted = None if static is None else pick_from(PUBLIC, static)
        response = await put_raw(self.client, path, public_ip(wanted))
        refusal = (
            static_refusal(self.model, PUBLIC, wanted)
            if wanted is not None
            else ((409, "IpAddressExhausted") if self.model.free(PUBLIC) < 1 else None)
        )
        if self.expect(response, refusal, "ipAddress"):
            return
        assert response.status_code == 201, response.text
        got = response.json()["properties"]["ipAddress"]
        assert wanted is None or got == wanted
        self.model.held[path] = (PUBLIC, got)
        self.model.resources[path] = [path]

    async def create_nic(self, static: int | None) -> None:
        path = f"/networkInterfaces/{self.model.fresh('nic')}"
        wanted = None if static is None else pick_from(INTERNAL, static)
        response = await put_raw(
            self.client, path, nic(ip_configuration("ip", INTERNAL.path, wanted))
        )
        refusal = (
            static_refusal(self.model, INTERNAL, wanted)
            if wanted is not None
            else ((409, "IpAddressExhausted") if self.model.free(INTERNAL) < 1 else None)
        )
        member = "privateIPAddress" if wanted is not None else "subnet"
        if self.expect(response, refusal, member):
            return
        assert response.status_code == 201, response.text
        holder = f"{path}/ipConfigurations/ip"
        got = response.json()["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]
        self.model.held[holder] = (INTERNAL, got)
        self.model.resources[path] = [holder]

    async def create_lb(self, wanted: tuple[tuple[int, int | None], ...]) -> None:
        path = f"/loadBalancers/{self.model.fresh('lb')}"
        # Static frontends first: Dynamic picks then never take what a Static one asks for.
        plan = sorted(
            ((SOURCES[s], None if c is None else pick_from(SOURCES[s], c)) for s, c in wanted),
            key=lambda item: item[1] is None,
        )
        bodies = [
            frontend(f"fe{i}", source.path, address) for i, (source, address) in enumerate(plan)
        ]
        response = await put_raw(self.client, path, load_balancer(frontends=tuple(bodies)))
        refusal = self.lb_refusal(plan)
        if self.expect(response, refusal, _member(refusal)):
            return
        assert response.status_code == 201, response.text
        holders = []
        for shown in response.json()["properties"]["frontendIPConfigurations"]:
            index = int(shown["resourceId"][2:])
            source, address = plan[index]
            got = shown["properties"]["privateIPAddress"]
            assert address is None or got == address
            holders.append(shown["resourceRef"])
            self.model.held[shown["resourceRef"]] = (source, got)
        self.model.resources[path] = holders

    def lb_refusal(self, plan: list[tuple[Source, str | None]]) -> tuple[int, str] | None:
        statics = [(s, a) for s, a in plan if a is not None]
        if len(set(statics)) != len(statics):
            return 400, "InvalidInput"
        for source, address in statics:
            refusal = static_refusal(self.model, source, address)
            if refusal is not None:
                return refusal
        for source in SOURCES:
            asked = sum(1 for s, a in plan if s == source and a is None)
            taken = sum(1 for s, a in statics if s == source)
            if asked and self.model.free(source) - taken < asked:
                return 409, "IpAddressExhausted"
        return None

    async def move_frontend(
        self, lb_index: int, fe_index: int, source: Source, static: int | None
    ) -> None:
        path = self.model.pick(lb_index, "/loadBalancers/")
        if path is None:
            return
        body = await get(self.client, path)
        frontends = body["properties"]["frontendIPConfigurations"]
        moved = frontends[fe_index % len(frontends)]
        holder = moved["resourceRef"]
        old_source, old_address = self.model.held[holder]
        wanted = None if static is None else pick_from(source, static)
        moved["properties"] = frontend(None, source.path, wanted)["properties"]
        response = await put_raw(self.client, path, body)
        refusal = self.move_refusal(holder, source, wanted, frontends)
        if self.expect(response, refusal, _member(refusal)):
            return
        assert response.status_code == 200, response.text
        shown = next(
            f
            for f in response.json()["properties"]["frontendIPConfigurations"]
            if f["resourceRef"] == holder
        )
        got = shown["properties"]["privateIPAddress"]
        if wanted is not None:
            assert got == wanted
        elif source == old_source:
            assert got == old_address  # Dynamic in the same subnet keeps its address
        self.model.held[holder] = (source, got)

    def move_refusal(
        self, holder: str, source: Source, wanted: str | None, frontends: list[Json]
    ) -> tuple[int, str] | None:
        old_source, _ = self.model.held[holder]
        if wanted is None:
            if source != old_source and self.model.free(source) < 1:
                return 409, "IpAddressExhausted"
            return None
        others = [
            f
            for f in frontends
            if f["resourceRef"] != holder
            and f["properties"].get("privateIPAllocationMethod") == "Static"
            and f["properties"]["subnet"]["resourceRef"].lower() == source.path.lower()
            and f["properties"].get("privateIPAddress") == wanted
        ]
        if others:
            return 400, "InvalidInput"
        return static_refusal(self.model, source, wanted, holder)

    async def reput_lb(self, lb_index: int, echo: bool) -> None:
        path = self.model.pick(lb_index, "/loadBalancers/")
        if path is None:
            return
        body = await get(self.client, path)
        if not echo:
            for shown in body["properties"]["frontendIPConfigurations"]:
                if shown["properties"]["privateIPAllocationMethod"] == "Dynamic":
                    del shown["properties"]["privateIPAddress"]
        written = await put(self.client, path, body, status=200)
        for shown in written["properties"]["frontendIPConfigurations"]:
            assert (
                shown["properties"]["privateIPAddress"] == self.model.held[shown["resourceRef"]][1]
            )

    async def delete(self, index: int) -> None:
        path = self.model.pick(index)
        if path is None:
            return
        response = await self.client.delete(url(path))
        assert response.status_code == 200, response.text
        for holder in self.model.resources.pop(path):
            del self.model.held[holder]

    # -- invariants ---------------------------------------------------------------------------

    async def check(self) -> None:
        for holder, (_, address) in self.model.held.items():
            shown = (await get(self.client, holder))["properties"]
            assert shown.get("privateIPAddress", shown.get("ipAddress")) == address, holder
        in_use = []
        for source in SOURCES:
            addresses = [a for s, a in self.model.held.values() if s == source]
            assert len(set(addresses)) == len(addresses), addresses
            assert set(addresses) <= source.vips, addresses
            assert sorted(await self.allocated(source)) == sorted(addresses)
            if source.pool is not None:
                usage = (await get(self.client, source.pool))["properties"]["usage"]
                assert usage["numberofIPAddressesAllocated"] == len(addresses)
                if addresses:
                    in_use.append(source.pool)
        shown = (await get(self.client, "/loadBalancerManager/config"))["properties"]
        assert refs(shown["vipPoolsInUse"]) == in_use

    async def allocated(self, source: Source) -> list[str]:
        async def work(connection: AsyncConnection) -> list[int]:
            repository = AllocationRepository(connection, is_postgres=self.database.is_postgres)
            return await repository.used_from(
                ADDRESSES, 0, 2**32 - 1, self.subnet_ids[source.path], limit=1000
            )

        return [str(ipaddress.ip_address(v)) for v in await self.database.run(work, write=False)]


def _member(refusal: tuple[int, str] | None) -> str:
    """The member a frontend's refusal names: its subnet when it is exhausted."""
    return (
        "subnet"
        if refusal is not None and refusal[1] == "IpAddressExhausted"
        else ("privateIPAddress")
    )


def pick_from(source: Source, index: int) -> str:
    return source.static_choices[index % len(source.static_choices)]


async def run_example(database_url: str, steps: list[Operation]) -> None:
    database = Database(database_url, pool_size=2)
    try:
        await empty(database)
        app = create_app(Settings(database_url=database_url), database=database)
        async with serve(app) as client:
            run = Run(client, database)
            await run.setup()
            await run.check()
            for operation in steps:
                await run.apply(operation)
                await run.check()
            if any(run.model.free(source) == 0 for source in SOURCES):
                event("a VIP source ended full")
    finally:
        await database.dispose()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(operations, min_size=8, max_size=30))
def test_vip_allocation_keeps_its_invariants(database_url: str, steps: list[Operation]) -> None:
    asyncio.run(run_example(database_url, steps))
