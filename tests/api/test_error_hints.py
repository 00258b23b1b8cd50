"""Errors a newcomer can act on: the likely typo of a missing required member, no library
wording, a 405 with ``Allow``, and a wrong URI that says which resource type was meant."""

from __future__ import annotations

import httpx

from tests.support.bodies import acl_rule_properties, mac_pool
from tests.support.nbi import assert_error, put_raw, url


async def test_a_typo_of_a_required_member_is_named(client: httpx.AsyncClient) -> None:
    body = {
        "properties": {
            "subnets": [{"resourceId": "s", "properties": {"AdressPrefix": "192.0.2.0/24"}}]
        }
    }
    response = await put_raw(client, "/logicalNetworks/typo", body)
    error = assert_error(response, 400, "InvalidInput", "properties/addressPrefix")
    assert error["message"].endswith(
        "addressPrefix is required; 'AdressPrefix' is not a member: did you mean 'addressPrefix'?"
    )


async def test_a_missing_member_without_a_likely_typo_is_only_required(
    client: httpx.AsyncClient,
) -> None:
    rule = acl_rule_properties()
    del rule["sourcePortRange"]
    rule["comment"] = "nothing like it"
    body = {"properties": {"aclRules": [{"resourceId": "r", "properties": rule}]}}
    error = assert_error(
        await put_raw(client, "/accessControlLists/a", body),
        400,
        "InvalidInput",
        "properties/sourcePortRange",
    )
    assert error["message"].endswith(": sourcePortRange is required")
    assert "did you mean" not in error["message"]


async def test_validator_messages_carry_no_library_wording(client: httpx.AsyncClient) -> None:
    response = await put_raw(client, "/macPools/m", mac_pool("zz", "00-11-22-33-44-55"))
    error = assert_error(response, 400, "InvalidInput", "properties.startMacAddress")
    assert "Value error" not in response.text
    assert error["message"] == "/macPools/m/properties/startMacAddress: 'zz' is not a MAC address"


async def test_405_names_the_methods_in_allow(client: httpx.AsyncClient) -> None:
    response = await client.post(url("/logicalNetworks/x"), json={})
    assert_error(response, 405, "MethodNotAllowed")
    assert response.headers["allow"] == "GET, PUT, DELETE"
    assert "it answers GET, PUT, DELETE" in response.json()["error"]["message"]

    singleton = await client.delete(url("/loadBalancerManager/config"))
    assert_error(singleton, 405, "MethodNotAllowed")
    assert singleton.headers["allow"] == "GET, PUT"

    collection = await client.put(url("/logicalNetworks"), json={})
    assert collection.status_code == 405
    assert collection.headers["allow"] == "GET"


async def test_a_wrong_path_says_which_type_was_meant(client: httpx.AsyncClient) -> None:
    async def message(path: str) -> str:
        response = await client.get(path)
        error = assert_error(response, 404, "NotFound")
        return str(error["message"])

    assert await message("/networking/v1/logicalNetwork") == (
        "'logicalNetwork' is no resource type here; did you mean 'logicalNetworks'?"
    )
    assert await message("/networking/v1/logicalNetworks/x/subnet/y") == (
        "'subnet' is no resource type under logicalNetworks; did you mean 'subnets'?"
    )
    unrelated = await message("/networking/v1/widgets")
    assert unrelated.startswith("'widgets' is no resource type here; the types are: ")
    assert "virtualNetworks" in unrelated
    assert "the API is under /networking/v1/" in await message("/v1/logicalNetworks")
