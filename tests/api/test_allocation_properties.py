"""Allocation as a property: random sequences of NIC operations against the real API (in
process, on the test database), checked after every step against a model of who holds what.

Operations: create a NIC with k Dynamic ipConfigurations, create a NIC with a Static address,
delete a NIC, add or remove an ipConfiguration at its child URI, re-PUT a NIC as GET shows it
(or without the Dynamic addresses, as a client that does not echo them). The model predicts
every outcome: a Dynamic request fails with 409 IpAddressExhausted exactly when fewer addresses
are free than it asks for, a Static one with 409 IpAddressInUse exactly when the address is
held and with 400 when it is a network, gateway or broadcast address. After every step:

* the NICs, their MACs and their addresses are exactly those of the model;
* no address is held twice in a subnet, and each is a usable address of its subnet;
* the allocation rows of each subnet are exactly the addresses of its ipConfigurations (none
  leaked, none lost), ipPool usage counts them and the subnets' back-references list them;
* MACs are distinct and the macPool's usage is the number of NICs.

Every example starts from an empty database and its own app.
"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections import Counter
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
from tests.support.nbi import assert_error, get, get_all, put, put_raw, serve, url
from tests.support.store import empty

Json = dict[str, Any]

PROVIDER = "/logicalNetworks/provider"
MAC_POOL = "/macPools/pool"
MAC_POOL_SIZE = 256


@dataclass(frozen=True)
class Subnet:
    path: str
    network: ipaddress.IPv4Network
    dynamic: frozenset[str]  # what Dynamic allocation hands out
    reserved: frozenset[str]  # network, gateway, broadcast: refused as Static addresses
    pool: str | None = None  # the ipPool whose usage counts the addresses

    @property
    def static_choices(self) -> list[str]:
        return sorted(self.dynamic | self.reserved, key=ipaddress.ip_address)


def _addresses(network: str, first: int, last: int) -> frozenset[str]:
    base = ipaddress.ip_network(network)
    return frozenset(str(base[i]) for i in range(first, last + 1))


# A virtual /29: .2 to .6 (5 addresses); .0, .1 (gateway) and .7 (broadcast) are reserved.
VIRTUAL = Subnet(
    "/virtualNetworks/vnet/subnets/s1",
    ipaddress.IPv4Network("10.9.0.0/29"),
    _addresses("10.9.0.0/29", 2, 6),
    frozenset({"10.9.0.0", "10.9.0.1", "10.9.0.7"}),
)
# A logical /24 (gateway .1) handing out its ipPool .10 to .15.
LOGICAL = Subnet(
    "/logicalNetworks/vlan/subnets/ls",
    ipaddress.IPv4Network("10.8.0.0/24"),
    _addresses("10.8.0.0/24", 10, 15),
    frozenset({"10.8.0.0", "10.8.0.1", "10.8.0.255"}),
    pool="/logicalNetworks/vlan/subnets/ls/ipPools/pool",
)
SUBNETS = (VIRTUAL, LOGICAL)


# -- operations -----------------------------------------------------------------------------
# NICs and their ipConfigurations are picked by index (modulo how many exist when it runs), so
# any sequence is valid and shrinks well.


@dataclass(frozen=True)
class CreateDynamic:
    subnet: int
    count: int


@dataclass(frozen=True)
class CreateStatic:
    subnet: int
    address: int


@dataclass(frozen=True)
class DeleteNic:
    nic: int


@dataclass(frozen=True)
class AddConfig:
    nic: int
    subnet: int
    address: int | None  # None: Dynamic


@dataclass(frozen=True)
class RemoveConfig:
    nic: int
    config: int


@dataclass(frozen=True)
class Reput:
    nic: int
    echo_addresses: bool


Operation = CreateDynamic | CreateStatic | DeleteNic | AddConfig | RemoveConfig | Reput

subnet_index = st.integers(min_value=0, max_value=len(SUBNETS) - 1)
pick = st.integers(min_value=0, max_value=63)
# Creations weigh more than releases, so subnets fill up and exhaustion comes up often.
WEIGHTED: list[st.SearchStrategy[Operation]] = [
    *[st.builds(CreateDynamic, subnet_index, st.integers(min_value=1, max_value=3))] * 3,
    *[st.builds(AddConfig, pick, subnet_index, st.none() | pick)] * 2,
    st.builds(CreateStatic, subnet_index, pick),
    st.builds(DeleteNic, pick),
    st.builds(RemoveConfig, pick, pick),
    st.builds(Reput, pick, st.booleans()),
]
operations: st.SearchStrategy[Operation] = st.sampled_from(WEIGHTED).flatmap(lambda s: s)


# -- the model -------------------------------------------------------------------------------


@dataclass
class ModelNic:
    mac: str
    configs: dict[str, tuple[Subnet, str]] = field(default_factory=dict)  # id -> where, address
    static: set[str] = field(default_factory=set)  # ids of the Static ones


@dataclass
class Model:
    nics: dict[str, ModelNic] = field(default_factory=dict)
    serial: int = 0

    def fresh(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def held(self, subnet: Subnet) -> dict[str, str]:
        """ipConfiguration resourceRef -> address, in ``subnet``."""
        return {
            f"/networkInterfaces/{name}/ipConfigurations/{config}": address
            for name, model_nic in self.nics.items()
            for config, (where, address) in model_nic.configs.items()
            if where == subnet
        }

    def free(self, subnet: Subnet) -> int:
        return len(subnet.dynamic - set(self.held(subnet).values()))

    def pick_nic(self, index: int) -> str | None:
        names = sorted(self.nics)
        return names[index % len(names)] if names else None


def configs_of(resource: Json) -> dict[str, tuple[Subnet, str]]:
    by_path = {s.path.lower(): s for s in SUBNETS}
    return {
        c["resourceId"]: (
            by_path[c["properties"]["subnet"]["resourceRef"].lower()],
            c["properties"]["privateIPAddress"],
        )
        for c in resource["properties"].get("ipConfigurations", [])
    }


# -- one example -----------------------------------------------------------------------------


class Run:
    def __init__(self, client: httpx.AsyncClient, database: Database) -> None:
        self.client = client
        self.database = database
        self.model = Model()
        self.subnet_ids: dict[str, uuid.UUID] = {}

    async def setup(self) -> None:
        await put(self.client, PROVIDER, provider_network())
        vnet = virtual_network(
            virtual_subnet("s1", str(VIRTUAL.network)),
            prefixes=("10.9.0.0/16",),
            logical_network_path=PROVIDER,
        )
        await put(self.client, "/virtualNetworks/vnet", vnet)
        pool = ip_pool("pool", "10.8.0.10", "10.8.0.15")
        subnet = logical_subnet("ls", str(LOGICAL.network), pool, defaultGateways=["10.8.0.1"])
        await put(self.client, "/logicalNetworks/vlan", logical_network(subnet))
        await put(self.client, MAC_POOL, mac_pool("00-1D-D8-B8-00-00", "00-1D-D8-B8-00-FF"))
        for where in SUBNETS:
            self.subnet_ids[where.path] = uuid.UUID(
                (await get(self.client, where.path))["instanceId"]
            )

    async def apply(self, operation: Operation) -> None:
        match operation:
            case CreateDynamic(subnet, count):
                await self.create_dynamic(SUBNETS[subnet], count)
            case CreateStatic(subnet, address):
                where = SUBNETS[subnet]
                await self.create_static(where, pick_from(where.static_choices, address))
            case DeleteNic(index):
                await self.delete_nic(index)
            case AddConfig(index, subnet, address):
                await self.add_config(index, SUBNETS[subnet], address)
            case RemoveConfig(index, config):
                await self.remove_config(index, config)
            case Reput(index, echo):
                await self.reput(index, echo_addresses=echo)

    async def create_dynamic(self, where: Subnet, count: int) -> None:
        name = self.model.fresh("nic")
        configs = [ip_configuration(f"ip{i}", where.path) for i in range(count)]
        response = await put_raw(self.client, f"/networkInterfaces/{name}", nic(*configs))
        if self.model.free(where) < count:
            assert_error(response, 409, "IpAddressExhausted", "subnet")
            event("a NIC was refused: IpAddressExhausted")
            return
        assert response.status_code == 201, response.text
        self.created(name, response.json())

    async def create_static(self, where: Subnet, address: str) -> None:
        name = self.model.fresh("nic")
        body = nic(ip_configuration("ip0", where.path, address))
        response = await put_raw(self.client, f"/networkInterfaces/{name}", body)
        if self.static_refused(where, address, response):
            return
        assert response.status_code == 201, response.text
        self.created(name, response.json())
        assert self.model.nics[name].configs["ip0"] == (where, address)

    def static_refused(
        self, where: Subnet, address: str, response: httpx.Response, owner: str | None = None
    ) -> bool:
        """Whether the model refuses a Static ``address`` in ``where`` (for a new
        ipConfiguration of NIC ``owner``), and then the response must be that refusal."""
        if address in where.reserved:
            assert_error(response, 400, "InvalidInput", "privateIPAddress")
            event("a Static address was refused: reserved")
            return True
        if owner is not None:
            siblings = self.model.nics[owner]
            if any(siblings.configs[c] == (where, address) for c in siblings.static):
                # The NIC's document then asks twice for one Static address: invalid input.
                assert_error(response, 400, "InvalidInput", "privateIPAddress")
                event("a Static address was refused: a Static sibling asks for it")
                return True
        if address in self.model.held(where).values():
            assert_error(response, 409, "IpAddressInUse", "privateIPAddress")
            event("a Static address was refused: IpAddressInUse")
            return True
        return False

    def created(self, name: str, resource: Json) -> None:
        mac = resource["properties"]["privateMacAddress"]
        static = {
            c["resourceId"]
            for c in resource["properties"]["ipConfigurations"]
            if c["properties"]["privateIPAllocationMethod"] == "Static"
        }
        self.model.nics[name] = ModelNic(mac, configs_of(resource), static)

    async def delete_nic(self, index: int) -> None:
        name = self.model.pick_nic(index)
        if name is None:
            return
        response = await self.client.delete(url(f"/networkInterfaces/{name}"))
        assert response.status_code == 200, response.text
        del self.model.nics[name]

    async def add_config(self, index: int, where: Subnet, address: int | None) -> None:
        name = self.model.pick_nic(index)
        if name is None:
            return
        config = self.model.fresh("config")
        path = f"/networkInterfaces/{name}/ipConfigurations/{config}"
        wanted = None if address is None else pick_from(where.static_choices, address)
        response = await put_raw(self.client, path, ip_configuration(None, where.path, wanted))
        if wanted is None and self.model.free(where) < 1:
            assert_error(response, 409, "IpAddressExhausted", "subnet")
            event("an ipConfiguration was refused: IpAddressExhausted")
            return
        if wanted is not None and self.static_refused(where, wanted, response, name):
            return
        assert response.status_code == 201, response.text
        got = response.json()["properties"]["privateIPAddress"]
        assert wanted is None or got == wanted
        self.model.nics[name].configs[config] = (where, got)
        if wanted is not None:
            self.model.nics[name].static.add(config)

    async def remove_config(self, index: int, config_index: int) -> None:
        name = self.model.pick_nic(index)
        if name is None or not self.model.nics[name].configs:
            return
        configs = sorted(self.model.nics[name].configs)
        config = configs[config_index % len(configs)]
        response = await self.client.delete(
            url(f"/networkInterfaces/{name}/ipConfigurations/{config}")
        )
        assert response.status_code == 200, response.text
        del self.model.nics[name].configs[config]
        self.model.nics[name].static.discard(config)

    async def reput(self, index: int, *, echo_addresses: bool) -> None:
        name = self.model.pick_nic(index)
        if name is None:
            return
        path = f"/networkInterfaces/{name}"
        body = await get(self.client, path)
        if not echo_addresses:
            for config in body["properties"]["ipConfigurations"]:
                if config["properties"]["privateIPAllocationMethod"] == "Dynamic":
                    del config["properties"]["privateIPAddress"]
        written = await put(self.client, path, body, status=200)
        assert written["properties"]["privateMacAddress"] == self.model.nics[name].mac
        assert configs_of(written) == self.model.nics[name].configs

    # -- invariants --------------------------------------------------------------------------

    async def check(self) -> None:
        nics = {n["resourceId"]: n for n in await get_all(self.client, "/networkInterfaces")}
        assert set(nics) == set(self.model.nics)
        for name, resource in nics.items():
            assert configs_of(resource) == self.model.nics[name].configs, name
            assert resource["properties"]["privateMacAddress"] == self.model.nics[name].mac
        macs = [n["properties"]["privateMacAddress"] for n in nics.values()]
        assert not [m for m, k in Counter(macs).items() if k > 1], macs
        usage = (await get(self.client, MAC_POOL))["properties"]["usage"]
        assert usage["numberofMacAddressesAllocated"] == len(nics)

        for where in SUBNETS:
            held = self.model.held(where)
            addresses = list(held.values())
            assert len(set(addresses)) == len(addresses), addresses
            assert set(addresses) <= where.dynamic, addresses
            shown = await get(self.client, where.path)
            assert {r["resourceRef"] for r in shown["properties"]["ipConfigurations"]} == set(held)
            assert sorted(await self.allocated(where)) == sorted(addresses)
            if where.pool is not None:
                pool_usage = (await get(self.client, where.pool))["properties"]["usage"]
                assert pool_usage["numberofIPAddressesAllocated"] == len(addresses)

    async def allocated(self, where: Subnet) -> list[str]:
        """The addresses the allocation table says are held in ``where``."""
        low = int(where.network.network_address)
        high = int(where.network.broadcast_address)

        async def work(connection: AsyncConnection) -> list[int]:
            repository = AllocationRepository(connection, is_postgres=self.database.is_postgres)
            return await repository.used_from(
                ADDRESSES, low, high, self.subnet_ids[where.path], limit=1000
            )

        return [str(ipaddress.ip_address(v)) for v in await self.database.run(work, write=False)]


def pick_from(choices: list[str], index: int) -> str:
    return choices[index % len(choices)]


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
            if any(run.model.free(where) == 0 for where in SUBNETS):
                event("a subnet ended full")
    finally:
        await database.dispose()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(operations, min_size=5, max_size=40))
def test_allocation_keeps_its_invariants(database_url: str, steps: list[Operation]) -> None:
    asyncio.run(run_example(database_url, steps))
