"""Fixtures of the southbound tests: a controller served in-process over a real socket (short
poll and bookmark intervals), the fabric of ``tests.support.southbound`` and agents that are
stopped when the test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from controller.settings import Settings
from controller.store.database import Database
from tests.support.southbound import (
    FAST,
    Agents,
    Fabric,
    InProcessController,
    build_fabric,
    in_process_controller,
    tokens,
)


@pytest.fixture
async def controller(database_url: str) -> AsyncIterator[InProcessController]:
    async with in_process_controller(Settings(database_url=database_url, **FAST)) as running:
        yield running


@pytest.fixture
async def agents(controller: InProcessController) -> AsyncIterator[Agents]:
    running = Agents([controller.base_url])
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def fabric(controller: InProcessController) -> Fabric:
    return await build_fabric(controller.http)


@pytest.fixture
async def agent_tokens(database: Database, fabric: Fabric) -> dict[str, str]:
    return await tokens(database)
