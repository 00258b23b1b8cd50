"""What a DELETE answers on the wire: NC's 200 with no body and no Content-Type (or 204 when
there was nothing), which is also what the OpenAPI document declares for it."""

from __future__ import annotations

import httpx

from tests.support.bodies import acl
from tests.support.nbi import V1, put


async def test_delete_answers_no_body_and_no_content_type(client: httpx.AsyncClient) -> None:
    await put(client, "/accessControlLists/web", acl())
    deleted = await client.delete(f"{V1}/accessControlLists/web")
    assert deleted.status_code == 200
    assert deleted.content == b""
    assert "content-type" not in deleted.headers
    assert deleted.headers["x-ms-request-id"]
    again = await client.delete(f"{V1}/accessControlLists/web")
    assert again.status_code == 204
    assert again.content == b""
    assert "content-type" not in again.headers
