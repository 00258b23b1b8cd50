"""Collections read a page at a time (controller/service/reading.py): a long one is streamed over
a real socket and lists every member once, in order, exactly as one read of it all would; a
short one is answered whole; a page that cannot be read cuts the answer short; members
written while a collection is being read are listed as the paged read promises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from controller.errors import ServiceUnavailable
from controller.service import reading
from controller.settings import Settings
from tests.support import bodies
from tests.support.nbi import delete, get, put
from tests.support.southbound import InProcessController, in_process_controller

COLLECTION = "/networking/v1/logicalNetworks"
# Subnets per network, so that pages of whole aggregates differ in rows.
SHAPES = [0, 3, 1, 0, 2, 0, 0, 3, 1, 1, 0, 2, 0, 3, 0, 0, 1]


def _network(index: int, subnets: int) -> dict[str, Any]:
    return bodies.logical_network(
        *(
            bodies.logical_subnet(
                f"s{j}",
                f"10.{index}.{j}.0/24",
                bodies.ip_pool("p", f"10.{index}.{j}.10", f"10.{index}.{j}.20"),
            )
            for j in range(subnets)
        )
    )


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[InProcessController]:
    async with in_process_controller(settings) as running:
        # Mixed case: the collection's order is by the lower-cased key.
        for index, subnets in enumerate(SHAPES):
            name = f"{'Net' if index % 2 else 'net'}-{index:02d}"
            await put(running.http, f"/logicalNetworks/{name}", _network(index, subnets))
        yield running


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "FIRST_PAGE_AGGREGATES", 3)
    monkeypatch.setattr(reading, "PAGE_ROWS", 10)


async def _read_into(http: httpx.AsyncClient, received: bytearray) -> None:
    async with http.stream("GET", COLLECTION) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_bytes():
            received += chunk


async def _whole(http: httpx.AsyncClient) -> httpx.Response:
    response = await http.get(COLLECTION)
    assert response.status_code == 200, response.text
    return response


async def test_a_long_collection_is_streamed_as_one_read_would_list_it(
    served: InProcessController, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_once = await _whole(served.http)
    assert "content-length" in at_once.headers
    monkeypatch.setattr(reading, "FIRST_PAGE_AGGREGATES", 3)
    monkeypatch.setattr(reading, "PAGE_ROWS", 10)
    paged = await _whole(served.http)
    assert paged.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in paged.headers
    assert paged.headers["content-type"] == "application/json; charset=utf-8"
    assert paged.content == at_once.content
    members = paged.json()["value"]
    keys = [member["resourceId"].lower() for member in members]
    assert keys == sorted(keys)
    assert len(keys) == len(SHAPES)
    for member in members:
        assert member == await get(served.http, member["resourceRef"])


@pytest.mark.usefixtures("small_pages")
async def test_a_collection_that_fills_its_one_page_exactly_is_answered_whole(
    served: InProcessController, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "FIRST_PAGE_AGGREGATES", len(SHAPES))
    response = await _whole(served.http)
    assert int(response.headers["content-length"]) == len(response.content)
    assert len(response.json()["value"]) == len(SHAPES)


@pytest.mark.usefixtures("small_pages")
async def test_a_page_that_cannot_be_read_cuts_the_answer_short(
    served: InProcessController, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = reading.Reader._page
    calls = 0

    async def failing(self: reading.Reader, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ServiceUnavailable("the database did not answer within 5 s", retry_after=5)
        return await real(self, *args)

    monkeypatch.setattr(reading.Reader, "_page", failing)
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        await _read_into(served.http, received)
    assert received.startswith(b'{"value":[')
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(received)
    # The server goes on answering.
    monkeypatch.setattr(reading.Reader, "_page", real)
    assert len((await _whole(served.http)).json()["value"]) == len(SHAPES)


@pytest.mark.usefixtures("small_pages")
async def test_members_written_while_a_collection_is_read(
    served: InProcessController, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first page (net-00, Net-01, net-02): a listed member and one not yet listed
    are deleted, one is created before the reader's position and one after it."""
    real = reading.Reader._page
    calls = 0

    async def writing(self: reading.Reader, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            http = served.http
            await delete(http, "/logicalNetworks/Net-01")
            await delete(http, "/logicalNetworks/net-10")
            await put(http, "/logicalNetworks/net-00a", _network(200, 1))
            await put(http, "/logicalNetworks/net-99", _network(201, 2))
        return await real(self, *args)

    monkeypatch.setattr(reading.Reader, "_page", writing)
    listed = [member["resourceId"] for member in (await _whole(served.http)).json()["value"]]
    throughout = [
        f"{'Net' if i % 2 else 'net'}-{i:02d}" for i in range(len(SHAPES)) if i not in (1, 10)
    ]
    assert sorted(listed, key=str.lower) == listed
    assert [name for name in listed if name in throughout] == throughout
    assert "Net-01" in listed  # listed before it went
    assert "net-99" in listed
    assert "net-10" not in listed
    assert "net-00a" not in listed
