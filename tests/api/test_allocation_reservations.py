"""Reservations of Dynamic addresses and MACs (service/reservations.py): what a failed write
reserved is given back at once, a live reservation is never handed out, an expired one is."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.database import Database
from controller.store.reservations import RESERVATIONS, reserved_text
from tests.support.bodies import ip_configuration, nic
from tests.support.fabrikam import TINY, WEB, address, build_fabrikam
from tests.support.nbi import get, props, put


@pytest.fixture
async def fabric(client: httpx.AsyncClient) -> httpx.AsyncClient:
    return await build_fabrikam(client)


async def reservations_left(database: Database) -> int:
    async def work(connection: AsyncConnection) -> int:
        query = select(func.count()).select_from(RESERVATIONS)
        return int((await connection.execute(query)).scalar_one())

    return await database.run(work, write=False)


async def test_a_failed_write_gives_back_what_it_reserved(
    fabric: httpx.AsyncClient, database: Database
) -> None:
    """The first ipConfiguration's Dynamic address (and the NIC's MAC) are drawn before the
    second's Static address turns out to be held: the write fails with 409, and the next NIC
    gets the very address and MAC the failed one had drawn."""
    await put(fabric, "/networkInterfaces/holder", nic(ip_configuration("ip", WEB, "24.30.1.5")))
    failed = await fabric.put(
        "/networking/v1/networkInterfaces/failed",
        json=nic(ip_configuration("d", TINY), ip_configuration("s", WEB, "24.30.1.5")),
    )
    assert failed.status_code == 409, failed.text
    assert failed.json()["error"]["code"] == "IpAddressInUse"
    assert await reservations_left(database) == 0
    created = await put(fabric, "/networkInterfaces/next", nic(ip_configuration("d", TINY)))
    assert address(created, "d") == "24.30.2.2"
    assert props(created)["privateMacAddress"] == "001DD8B71C01"
    assert await reservations_left(database) == 0


async def reserve_directly(
    database: Database, subnet_id: uuid.UUID, value: int, expires_at: datetime
) -> None:
    """A reservation as a writer that died would have left it."""

    async def work(connection: AsyncConnection) -> None:
        row = {
            "numbering": "ip_allocations",
            "scope_id": subnet_id,
            "value": reserved_text(value),
            "token": uuid.uuid4(),
            "expires_at": expires_at,
        }
        await connection.execute(insert(RESERVATIONS).values(**row))

    await database.run(work)


@pytest.mark.postgres_only
async def test_a_live_reservation_is_skipped_and_an_expired_one_taken_over(
    fabric: httpx.AsyncClient, database: Database
) -> None:
    tiny = uuid.UUID((await get(fabric, TINY))["instanceId"])
    now = datetime.now(UTC)
    base = int.from_bytes(bytes([24, 30, 2, 0]), "big")
    await reserve_directly(database, tiny, base + 2, now + timedelta(hours=1))
    await reserve_directly(database, tiny, base + 4, now - timedelta(seconds=1))
    handed = []
    for name in ("a", "b", "c"):
        created = await put(fabric, f"/networkInterfaces/{name}", nic(ip_configuration("d", TINY)))
        handed.append(address(created, "d"))
    # After the highest in use (the live .2): .3, then .4 whose reservation had expired, .5.
    assert handed == ["24.30.2.3", "24.30.2.4", "24.30.2.5"]
    assert await reservations_left(database) == 1  # the live one, whoever made it
    last = await fabric.put(
        "/networking/v1/networkInterfaces/d", json=nic(ip_configuration("d", TINY))
    )
    assert address(last.json(), "d") == "24.30.2.6"
    full = await fabric.put(
        "/networking/v1/networkInterfaces/e", json=nic(ip_configuration("d", TINY))
    )
    assert full.status_code == 409, full.text
    assert full.json()["error"]["code"] == "IpAddressExhausted"
