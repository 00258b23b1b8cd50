"""Test support for abusing the agent channel: waiting for the controller's refusal (its
``error`` message and close frame), reading an agent's status row as the NBI does, waiting for
a status written after a moment, and finding tracebacks in the controller's log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from controller import protocol
from controller.store.agents import AgentRepository, AgentState
from controller.store.database import Database
from tests.support.southbound import eventually

Message = dict[str, Any]


async def refused_with(websocket: ClientConnection, code: str, within: float = 10.0) -> Message:
    """Wait for the controller's ``error`` message with ``code`` (bookmarks and policy may come
    before it), then for the connection to close; returns the error message."""
    async with asyncio.timeout(within):
        while True:
            message = protocol.decode(await websocket.recv())
            if message["type"] == protocol.ERROR:
                break
        assert message["code"] == code, message
        assert isinstance(message["message"], str)
        assert message["message"], message
        with contextlib.suppress(ConnectionClosed):
            while True:
                await websocket.recv()
    return message


async def server_status(database: Database, server_instance_id: str) -> AgentState | None:
    """The agent status row of a server, as the NBI reads it."""

    async def read(connection: AsyncConnection) -> AgentState | None:
        agents = AgentRepository(connection, is_postgres=database.is_postgres)
        found = await agents.states([uuid.UUID(server_instance_id)])
        return next(iter(found.values()), None)

    return await database.run(read, write=False)


async def status_written_after(
    database: Database, server_instance_id: str, moment: datetime, within: float = 10.0
) -> AgentState:
    """Wait until a status of the server's agent reported after ``moment`` is in the database
    (a flush wrote a state the agent sent since then)."""
    found: list[AgentState] = []

    async def check() -> bool:
        row = await server_status(database, server_instance_id)
        found[:] = [] if row is None else [row]
        return row is not None and row.connected and row.last_seen > moment

    await eventually(check, within, f"a status of {server_instance_id} written after {moment}")
    return found[0]


def tracebacks(records: Sequence[logging.LogRecord]) -> list[str]:
    """The log records that carry a traceback (named, for an assertion message)."""
    return [f"{r.name}: {r.getMessage()}" for r in records if r.exc_info is not None]


def channel_warnings(records: Sequence[logging.LogRecord], server_instance_id: str) -> list[str]:
    """The warnings the controller logged about the channel of a server."""
    return [
        r.getMessage()
        for r in records
        if r.levelno == logging.WARNING
        and r.name.startswith("controller.southbound")
        and server_instance_id in r.getMessage()
    ]


async def raw_handshake(
    base_url: str, path: bytes, headers: Sequence[tuple[bytes, bytes]], within: float = 10.0
) -> int:
    """Send a WebSocket upgrade request byte for byte (any path, any header bytes) and return
    the HTTP status the controller answers with (0 if it closed without one)."""
    host, port = base_url.split("://", 1)[1].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        request = [
            b"GET " + path + b" HTTP/1.1",
            b"Host: " + host.encode(),
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            b"Sec-WebSocket-Version: 13",
            *(name + b": " + value for name, value in headers),
        ]
        writer.write(b"\r\n".join(request) + b"\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(within):
            status_line = await reader.readline()
        parts = status_line.split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
