"""credentials: X509 thumbprints are returned, passwords and community strings never are."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.support.bodies import cmdlet_body, credential
from tests.support.nbi import (
    Json,
    assert_absent,
    assert_etag,
    assert_put_rejected,
    delete,
    get,
    get_all,
    props,
    put,
)

THUMBPRINT = "8E3F1A2B4C5D6E7F8091A2B3C4D5E6F708192A3B"
PASSWORD = "Pa55w0rd!-never-echo-this"
COMMUNITY = "community-never-echo-this"


def admin_credential() -> Json:
    """The account ``admin`` with its password ``PASSWORD``."""
    return credential("UsernamePassword", userName="admin", value=PASSWORD)


def assert_secret_absent(*documents: object) -> None:
    text = json.dumps(documents)
    assert PASSWORD not in text
    assert COMMUNITY not in text


async def test_x509_credential_is_created_and_returns_its_thumbprint(
    client: httpx.AsyncClient,
) -> None:
    body = cmdlet_body("NCHostCert", Type="x509certificate", Value=THUMBPRINT)
    created = await put(client, "/Credentials/NCHostCert", body, status=201)

    assert created["resourceRef"] == "/credentials/NCHostCert"
    assert created["resourceId"] == "NCHostCert"
    assert uuid.UUID(created["instanceId"])
    assert_etag(created["etag"])
    assert props(created) == {
        "provisioningState": "Succeeded",
        "type": "X509Certificate",
        "value": THUMBPRINT,
        "networks": [],
    }
    assert await get(client, "/credentials/nchostcert") == created


async def test_subject_name_credential_returns_its_subject(client: httpx.AsyncClient) -> None:
    body = credential("X509CertificateSubjectName", value="CN=nc.contoso.com")
    created = await put(client, "/credentials/NCSubject", body, status=201)
    assert props(created)["type"] == "X509CertificateSubjectName"
    assert props(created)["value"] == "CN=nc.contoso.com"


async def test_password_is_not_returned_by_put_get_or_get_all(client: httpx.AsyncClient) -> None:
    body = cmdlet_body(
        "NCHostUser", Type="usernamePassword", Username="CONTOSO\\NCAdmin", Value=PASSWORD
    )
    response = await client.put("/networking/v1/credentials/NCHostUser", json=body)
    assert response.status_code == 201
    one = await client.get("/networking/v1/credentials/NCHostUser")
    every = await client.get("/networking/v1/credentials")

    for text in (response.text, one.text, every.text):
        assert PASSWORD not in text
    assert props(response.json()) == {
        "provisioningState": "Succeeded",
        "type": "UsernamePassword",
        "userName": "CONTOSO\\NCAdmin",
        "networks": [],
    }
    assert one.json() == response.json()
    assert every.json()["value"] == [response.json()]


async def test_community_string_is_not_returned(client: httpx.AsyncClient) -> None:
    body = {"properties": {"TYPE": "snmpcommunitystring", "VALUE": COMMUNITY}}
    created = await put(client, "/credentials/snmp", body, status=201)
    assert props(created) == {
        "provisioningState": "Succeeded",
        "type": "SnmpCommunityString",
        "networks": [],
    }
    assert_secret_absent(created, await get(client, "/credentials/snmp"))
    assert_secret_absent(await get_all(client, "/credentials"))


async def test_get_all_returns_thumbprints_but_no_passwords(client: httpx.AsyncClient) -> None:
    await put(client, "/credentials/cert", credential("X509Certificate", value=THUMBPRINT))
    await put(client, "/credentials/user", admin_credential())
    listed = {c["resourceId"]: props(c) for c in await get_all(client, "/credentials")}
    assert listed["cert"]["value"] == THUMBPRINT
    assert "value" not in listed["user"]
    assert_secret_absent(listed)


async def test_re_put_without_value_keeps_the_password(client: httpx.AsyncClient) -> None:
    await put(
        client,
        "/credentials/NCHostUser",
        credential("UsernamePassword", userName="CONTOSO\\a", value=PASSWORD),
    )
    renamed = await put(
        client,
        "/credentials/NCHostUser",
        credential("UsernamePassword", userName="CONTOSO\\b"),
        status=200,
    )
    assert props(renamed)["userName"] == "CONTOSO\\b"
    # A second value-less PUT only validates if the first one kept the stored password.
    again = await put(
        client,
        "/credentials/NCHostUser",
        credential("UsernamePassword", userName="CONTOSO\\c", value=None),
        status=200,
    )
    assert props(again)["userName"] == "CONTOSO\\c"
    assert again["instanceId"] == renamed["instanceId"]
    assert_secret_absent(renamed, again, await get(client, "/credentials/NCHostUser"))


async def test_re_put_of_what_get_returned_is_accepted(client: httpx.AsyncClient) -> None:
    """Read-modify-write as PowerShell does it: every read-only member echoed back."""
    created = await put(client, "/credentials/NCHostUser", admin_credential())
    fetched = await get(client, "/credentials/NCHostUser")
    rewritten = await put(client, "/credentials/NCHostUser", fetched, status=200)
    assert rewritten["instanceId"] == created["instanceId"]
    assert rewritten["etag"] != created["etag"]
    assert props(rewritten) == props(created)
    # And once more from the PUT response: the password is still there to keep.
    await put(client, "/credentials/NCHostUser", rewritten, status=200)
    assert_secret_absent(await get(client, "/credentials/NCHostUser"))


async def test_re_put_of_an_x509_credential_from_get_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    await put(client, "/credentials/cert", credential("X509Certificate", value=THUMBPRINT))
    fetched = await get(client, "/credentials/cert")
    rewritten = await put(client, "/credentials/cert", fetched, status=200)
    assert props(rewritten) == props(fetched)


async def test_changing_to_a_certificate_drops_the_password(client: httpx.AsyncClient) -> None:
    await put(client, "/credentials/c", admin_credential())
    changed = await put(client, "/credentials/c", credential("X509Certificate", value=THUMBPRINT))
    assert props(changed) == {
        "provisioningState": "Succeeded",
        "type": "X509Certificate",
        "value": THUMBPRINT,
        "networks": [],
    }
    # The old password is gone: going back needs a new one.
    await assert_put_rejected(
        client,
        "/credentials/c",
        credential("UsernamePassword", userName="admin"),
        target="properties/value",
    )


async def test_delete_is_idempotent(client: httpx.AsyncClient) -> None:
    await put(client, "/credentials/c", credential("X509Certificate", value=THUMBPRINT))
    await delete(client, "/credentials/C")
    await assert_absent(client, "/credentials/c")
    await delete(client, "/credentials/c", status=204)


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "target"),
    [
        pytest.param({"value": THUMBPRINT}, "properties.type", id="type-missing"),
        pytest.param({"type": None, "value": THUMBPRINT}, "properties.type", id="type-null"),
        pytest.param({"type": "Kerberos", "value": "x"}, "properties.type", id="type-unknown"),
        pytest.param({"type": 1, "value": "x"}, "properties.type", id="type-number"),
        pytest.param({"type": "X509Certificate"}, "properties/value", id="thumbprint-missing"),
        pytest.param(
            {"type": "X509Certificate", "value": ""}, "properties/value", id="thumbprint-empty"
        ),
        pytest.param(
            {"type": "UsernamePassword", "userName": "admin"},
            "properties/value",
            id="password-missing",
        ),
        pytest.param(
            {"type": "SnmpCommunityString", "value": ""},
            "properties/value",
            id="community-empty",
        ),
        pytest.param(
            {"type": "UsernamePassword", "value": PASSWORD},
            "properties/userName",
            id="username-missing",
        ),
        pytest.param(
            {"type": "UsernamePassword", "userName": "", "value": PASSWORD},
            "properties/userName",
            id="username-empty",
        ),
        pytest.param(
            {"type": "UsernamePassword", "userName": "u" * 257, "value": PASSWORD},
            "properties.userName",
            id="username-too-long",
        ),
    ],
)
async def test_invalid_credential_is_not_created(
    client: httpx.AsyncClient, properties: dict[str, object], target: str
) -> None:
    error = await assert_put_rejected(
        client, "/credentials/bad", {"properties": properties}, target=target
    )
    assert PASSWORD not in json.dumps(error)
    await assert_absent(client, "/credentials/bad")


async def test_invalid_update_leaves_the_credential_unchanged(client: httpx.AsyncClient) -> None:
    await put(client, "/credentials/user", admin_credential())
    await assert_put_rejected(
        client,
        "/credentials/user",
        credential("UsernamePassword", value="new-password"),
        target="properties/userName",
    )
    await assert_put_rejected(
        client,
        "/credentials/user",
        credential("Certificate", value=THUMBPRINT),
        target="properties.type",
    )


async def test_an_empty_value_does_not_wipe_the_stored_password(
    client: httpx.AsyncClient,
) -> None:
    await put(client, "/credentials/user", admin_credential())
    await assert_put_rejected(
        client,
        "/credentials/user",
        credential("UsernamePassword", userName="admin", value=""),
        target="properties/value",
    )
    # The password is still there to keep.
    await put(
        client, "/credentials/user", credential("UsernamePassword", userName="admin"), status=200
    )


async def test_a_certificate_thumbprint_is_not_kept_like_a_secret(
    client: httpx.AsyncClient,
) -> None:
    """Only passwords and community strings survive a value-less PUT; a certificate credential
    always states which certificate it means."""
    await put(client, "/credentials/cert", credential("X509Certificate", value=THUMBPRINT))
    await assert_put_rejected(
        client, "/credentials/cert", credential("X509Certificate"), target="properties/value"
    )


async def test_body_resource_id_must_match_the_uri(client: httpx.AsyncClient) -> None:
    body = cmdlet_body("other", Type="X509Certificate", Value=THUMBPRINT)
    await assert_put_rejected(
        client, "/credentials/cert", body, code="ResourceIdMismatch", target="resourceId"
    )
