"""loadBalancerMuxes: the MUX role, placed on a server (our ``server`` extension), with its
BGP peering; its ``configurationState`` follows the agent of its server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from controller.settings import Settings
from controller.store.database import Database
from tests.support.bodies import connection, credential, ref, server
from tests.support.nbi import (
    assert_configuration_state,
    assert_delete_rejected,
    assert_put_rejected,
    delete,
    get,
    props,
    put,
    without_read_times,
)
from tests.support.southbound import (
    FAST,
    Agents,
    InProcessController,
    build_fabric,
    eventually,
    in_process_controller,
    tokens,
)

MUX = "/loadBalancerMuxes/Mux1"
HOST = "/servers/MuxHost"
Json = dict[str, object]


def mux(**properties: object) -> Json:
    """Mux1 on MuxHost, peering with one top-of-rack router, with ``properties`` on top."""
    return {
        "properties": {
            "server": ref(HOST),
            "routerConfiguration": {
                "localASN": 64628,
                "peerRouterConfigurations": [
                    {
                        "localIPAddress": "10.10.56.30",
                        "peerASN": 64623,
                        "routerIPAddress": "10.10.56.1",
                        "routerName": "ToR1",
                        "id": "ToR1",
                    }
                ],
            },
            **properties,
        }
    }


@pytest.fixture
async def fabric(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await put(client, "/credentials/cert", credential("X509Certificate", value="AB12"))
    await put(client, HOST, server(connection("/credentials/cert", address="muxhost")))
    return client


async def test_a_mux_comes_back_canonical(fabric: httpx.AsyncClient) -> None:
    body = mux()
    body["properties"]["routerConfiguration"]["localASN"] = "64628"  # type: ignore[index]
    created = await put(fabric, MUX, body, status=201)
    state = assert_configuration_state(created, "Failure", "HostNotConnectedToController")
    assert props(created) == {
        "provisioningState": "Succeeded",
        "configurationState": state,
        "server": ref(HOST),
        "connections": [],
        "routerConfiguration": {
            "localASN": 64628,
            "peerRouterConfigurations": [
                {
                    "localIPAddress": "10.10.56.30",
                    "peerASN": 64623,
                    "routerIPAddress": "10.10.56.1",
                    "routerName": "ToR1",
                    "id": "ToR1",
                }
            ],
        },
    }
    assert without_read_times(await get(fabric, MUX)) == without_read_times(created)
    # A mux on no server has nothing to configure.
    unplaced = await put(fabric, "/loadBalancerMuxes/Spare", {"properties": {}}, status=201)
    assert_configuration_state(unplaced, "Uninitialized")


@pytest.mark.parametrize(
    ("router", "target"),
    [
        ({"localASN": 0}, "properties.routerConfiguration.localASN"),
        ({"localASN": 2**32}, "properties.routerConfiguration.localASN"),
        ({"localASN": True}, "properties.routerConfiguration.localASN"),
        (
            {"localASN": 1, "peerRouterConfigurations": [{"peerASN": 2, "routerIPAddress": "x"}]},
            "properties.routerConfiguration.peerRouterConfigurations[0].routerIPAddress",
        ),
        (
            {"localASN": 1, "peerRouterConfigurations": [{"routerIPAddress": "10.0.0.1"}]},
            "properties.routerConfiguration.peerRouterConfigurations[0].peerASN",
        ),
        (
            {
                "localASN": 1,
                "peerRouterConfigurations": [
                    {"peerASN": 2, "routerIPAddress": "10.0.0.1"},
                    {"peerASN": 3, "routerIPAddress": "10.0.0.1"},
                ],
            },
            "properties/routerConfiguration/peerRouterConfigurations/1/routerIPAddress",
        ),
    ],
)
async def test_bad_router_configurations_are_refused(
    fabric: httpx.AsyncClient, router: Json, target: str
) -> None:
    await assert_put_rejected(fabric, MUX, mux(routerConfiguration=router), target=target)


async def test_the_server_of_a_mux_is_a_real_reference(fabric: httpx.AsyncClient) -> None:
    await assert_put_rejected(
        fabric,
        MUX,
        mux(server=ref("/servers/nope")),
        target="properties/server",
        code="InvalidReference",
    )
    await put(fabric, MUX, mux())
    error = await assert_delete_rejected(fabric, HOST, target=HOST)
    assert MUX in error["message"]
    await delete(fabric, MUX)
    await delete(fabric, HOST)


# -- with a host agent ------------------------------------------------------------------------


@pytest.fixture
async def controller(database_url: str) -> AsyncIterator[InProcessController]:
    async with in_process_controller(Settings(database_url=database_url, **FAST)) as running:
        yield running


async def test_a_mux_is_configured_while_the_agent_of_its_server_is_connected(
    controller: InProcessController, database: Database
) -> None:
    http = controller.http
    await build_fabric(http)
    created = await put(http, MUX, mux(server=ref("/servers/hostA")), status=201)
    assert_configuration_state(created, "Failure", "HostNotConnectedToController")
    token = (await tokens(database, ("hostA",)))["hostA"]
    agents = Agents([controller.base_url])

    async def status_is(wanted: str) -> bool:
        state = props(await get(http, MUX))["configurationState"]
        assert isinstance(state, dict)
        return bool(state["status"] == wanted)

    try:
        agent = agents.start("hostA", token)
        await eventually(lambda: status_is("Success"), 10.0, "the mux's host connecting")
        assert_configuration_state(await get(http, MUX), "Success")
        await agents.stop(agent)
        await eventually(lambda: status_is("Failure"), 10.0, "the mux's host disconnecting")
        assert_configuration_state(await get(http, MUX), "Failure", "HostNotConnectedToController")
    finally:
        await agents.close()
