from __future__ import annotations

import httpx


async def test_discovery(client: httpx.AsyncClient) -> None:
    response = await client.get("/networking/discovery")
    assert response.status_code == 200
    assert response.json()["properties"]["currentRestVersion"] == "v5"
