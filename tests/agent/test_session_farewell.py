"""The agent hears why the controller closed its session even when the close comes while it
is answering: a controller that sends a message, its ``error`` and the close at once (the
agent's ack of the message then meets a closing connection) is still understood."""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection, serve

from controller import protocol
from tests.support.southbound import Agents, eventually


async def _bookmark_then_refuse(websocket: ServerConnection) -> None:
    await websocket.recv()  # the hello
    # All three in one write: the agent reads the close before it can ack the bookmark.
    websocket.protocol.send_binary(protocol.encode({"type": protocol.BOOKMARK, "revision": 1}))
    websocket.protocol.send_binary(
        protocol.encode(protocol.error(protocol.STATUS_NOT_RECORDED, "refused"))
    )
    websocket.protocol.send_close(protocol.INTERNAL_ERROR, "refused")
    websocket.send_data()
    await websocket.wait_closed()


async def test_an_error_sent_with_the_close_is_heard_while_acking() -> None:
    async with serve(_bookmark_then_refuse, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        agents = Agents([f"http://127.0.0.1:{port}"])
        try:
            agent = agents.start("hostA", "token")
            await eventually(lambda: agent.stats.refusals >= 1, 10, "the refusal to be heard")
            assert agent.last_refusal == (protocol.STATUS_NOT_RECORDED, "refused")
        finally:
            await agents.close()
