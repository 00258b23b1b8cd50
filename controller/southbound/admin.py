"""Operator helpers that need the controller's configuration: agent tokens of servers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.southbound import tokens
from controller.store.agents import RESOURCES, AgentRepository
from controller.store.database import Database


async def agent_token(database: Database, server_resource_id: str) -> str | None:
    """The token the agent of server ``server_resource_id`` authenticates with."""

    async def work(connection: AsyncConnection) -> str | None:
        agents = AgentRepository(connection, is_postgres=database.is_postgres)
        server = await agents.server_by_resource_id(server_resource_id)
        if server is None:
            return None
        return tokens.mint(await agents.secret(tokens.SECRET_NAME), str(server[0]))

    return await database.run(work)


async def server_tokens(database: Database, limit: int) -> list[tuple[str, str]]:
    """(resourceId, token) of up to ``limit`` servers, in resourceId order."""

    async def work(connection: AsyncConnection) -> list[tuple[str, str]]:
        agents = AgentRepository(connection, is_postgres=database.is_postgres)
        secret = await agents.secret(tokens.SECRET_NAME)
        query = (
            select(RESOURCES.c.resource_id, RESOURCES.c.instance_id)
            .where(RESOURCES.c.kind == "servers")
            .order_by(RESOURCES.c.path_key)
            .limit(limit)
        )
        rows = await connection.execute(query)
        return [(row[0], tokens.mint(secret, str(row[1]))) for row in rows]

    return await database.run(work)
