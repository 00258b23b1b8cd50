"""Races between concurrent clients of a real controller on PostgreSQL, over real sockets.

Each test drives a controller subprocess (one per module, on a fresh database) with many
concurrent httpx clients and checks the invariants of the engine: one winner per ``If-Match``,
no lost update, one resource per creation race, references and deletes that never both win,
and no half-applied write. Results are judged by status codes and by what GET shows afterwards;
nothing here is timed. When a test fails, the controller's log for that test is printed.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest

from tests.conftest import create_database
from tests.support.bodies import acl_rule_properties
from tests.support.responses import assert_no_5xx, describe, error_code
from tests.support.server import ControllerServer, running_controller

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

CLIENTS = 32
Json = dict[str, Any]


@pytest.fixture(scope="module")
def controller(postgres_server: str) -> Iterator[ControllerServer]:
    with create_database(postgres_server) as url, running_controller(url) as server:
        yield server


@pytest.fixture
async def nc(controller: ControllerServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the controller's /networking/v1; the controller's log of the test is printed
    afterwards (pytest shows it when the test fails)."""
    offset = controller.log_size()
    limits = httpx.Limits(max_connections=2 * CLIENTS, max_keepalive_connections=2 * CLIENTS)
    try:
        async with httpx.AsyncClient(
            base_url=f"{controller.base_url}/networking/v1", limits=limits, timeout=60.0
        ) as http:
            yield http
    finally:
        log = controller.log_since(offset)
        if log:
            print(f"--- controller log during this test ---\n{log}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rule_properties(priority: int, *, description: str = "", **overrides: object) -> Json:
    """An inbound TCP/443 rule to 10.0.0.0/8; ``description`` tells the writers apart."""
    members: Json = {
        "destinationPortRange": "443",
        "destinationAddressPrefix": "10.0.0.0/8",
        "description": description,
        **overrides,
    }
    return acl_rule_properties(priority, **members)


def rule(resource_id: str, priority: int, *, description: str = "", **overrides: object) -> Json:
    return {
        "resourceId": resource_id,
        "properties": rule_properties(priority, description=description, **overrides),
    }


def acl_body(rules: Sequence[Json]) -> Json:
    return {"properties": {"inboundDefaultAction": "Deny", "aclRules": list(rules)}}


def rule_set(acl: Json) -> set[tuple[str, int, str]]:
    """What identifies the rules of an ACL as shown by GET."""
    return {
        (r["resourceId"], r["properties"]["priority"], r["properties"].get("description", ""))
        for r in acl["properties"]["aclRules"]
    }


async def create_acl(nc: httpx.AsyncClient, path: str, rules: Sequence[Json] = ()) -> str:
    created = await nc.put(path, json=acl_body(rules))
    assert created.status_code == 201, created.text
    return created.headers["etag"]


# -- a. one winner per If-Match ------------------------------------------------------------


async def test_two_puts_with_the_same_if_match_have_one_winner(nc: httpx.AsyncClient) -> None:
    path = f"/accessControlLists/{unique('acl')}"
    etag = await create_acl(nc, path, [rule("base", 100)])
    for round_ in range(30):
        bodies = [
            acl_body([rule(f"{writer}-{round_}", 200 + round_, description=f"{writer} {round_}")])
            for writer in ("a", "b")
        ]
        responses = await asyncio.gather(
            *(nc.put(path, json=body, headers={"If-Match": etag}) for body in bodies)
        )
        assert sorted(r.status_code for r in responses) == [200, 412], describe(responses)
        winner = next(r for r in responses if r.status_code == 200)
        loser = next(r for r in responses if r.status_code == 412)
        assert error_code(loser) == "PreconditionFailed"
        shown = await nc.get(path)
        assert shown.status_code == 200
        assert shown.json() == winner.json()
        assert shown.headers["etag"] == winner.headers["etag"] != etag
        etag = winner.headers["etag"]


# -- b. read-modify-write with If-Match loses no update --------------------------------------


async def test_read_modify_write_loops_lose_no_update(nc: httpx.AsyncClient) -> None:
    path = f"/accessControlLists/{unique('acl')}"
    await create_acl(nc, path)
    responses: list[httpx.Response] = []
    put_statuses: Counter[int] = Counter()

    async def client(index: int) -> None:
        for _ in range(10 * CLIENTS):
            current = await nc.get(path)
            responses.append(current)
            assert current.status_code == 200, current.text
            # Send back what GET showed (read-only members included), plus this client's rule.
            body = current.json()
            body["properties"]["aclRules"].append(
                rule(f"client-{index}", 1000 + index, description=f"client {index}")
            )
            written = await nc.put(path, json=body, headers={"If-Match": current.headers["etag"]})
            responses.append(written)
            put_statuses[written.status_code] += 1
            if written.status_code == 200:
                return
            assert written.status_code == 412, written.text
            await asyncio.sleep(random.uniform(0, 0.005))
        raise AssertionError(f"client {index} never got its rule in")

    await asyncio.gather(*(client(index) for index in range(CLIENTS)))

    assert_no_5xx(responses)
    final = (await nc.get(path)).json()
    expected = {(f"client-{i}", 1000 + i, f"client {i}") for i in range(CLIENTS)}
    assert rule_set(final) == expected
    assert put_statuses[200] == len(final["properties"]["aclRules"]) == CLIENTS
    assert set(put_statuses) <= {200, 412}, put_statuses


# -- c. creation races -----------------------------------------------------------------------


async def test_concurrent_creates_with_if_none_match_star(nc: httpx.AsyncClient) -> None:
    path = f"/accessControlLists/{unique('acl')}"
    body = acl_body([rule("r1", 100), rule("r2", 200)])
    responses = await asyncio.gather(
        *(nc.put(path, json=body, headers={"If-None-Match": "*"}) for _ in range(CLIENTS))
    )
    assert_no_5xx(responses)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 412: CLIENTS - 1}, describe(responses)
    assert {error_code(r) for r in responses if r.status_code == 412} == {"PreconditionFailed"}
    created = next(r for r in responses if r.status_code == 201)
    shown = await nc.get(path)
    assert shown.json()["instanceId"] == created.json()["instanceId"]


async def test_concurrent_creates_without_preconditions(nc: httpx.AsyncClient) -> None:
    resource_id = unique("acl")
    path = f"/accessControlLists/{resource_id}"
    body = acl_body([rule("r1", 100), rule("r2", 200)])
    responses = await asyncio.gather(*(nc.put(path, json=body) for _ in range(CLIENTS)))
    assert_no_5xx(responses)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 200: CLIENTS - 1}, describe(responses)
    instance_ids = {r.json()["instanceId"] for r in responses}
    assert len(instance_ids) == 1, instance_ids
    listed = (await nc.get("/accessControlLists")).json()["value"]
    matching = [acl for acl in listed if acl["resourceId"] == resource_id]
    assert [acl["instanceId"] for acl in matching] == list(instance_ids)
    assert rule_set(matching[0]) == {("r1", 100, ""), ("r2", 200, "")}


# -- d. concurrent child PUTs ----------------------------------------------------------------


async def test_concurrent_child_puts_all_land(nc: httpx.AsyncClient) -> None:
    path = f"/accessControlLists/{unique('acl')}"
    etag = await create_acl(nc, path)
    responses = await asyncio.gather(
        *(
            nc.put(
                f"{path}/aclRules/rule-{i}",
                json={"properties": rule_properties(100 + i, description=f"child {i}")},
            )
            for i in range(CLIENTS)
        )
    )
    assert_no_5xx(responses)
    assert Counter(r.status_code for r in responses) == {201: CLIENTS}, describe(responses)
    final = await nc.get(path)
    assert rule_set(final.json()) == {(f"rule-{i}", 100 + i, f"child {i}") for i in range(CLIENTS)}
    assert final.headers["etag"] != etag
    # The last write's etag is the aggregate's etag.
    assert final.headers["etag"] in {r.headers["etag"] for r in responses}


async def test_concurrent_child_puts_of_one_priority_have_one_winner(
    nc: httpx.AsyncClient,
) -> None:
    """A rule written at its own URI is checked against its siblings by the database (the
    aggregate is not loaded); the ACL's lock still makes one priority one rule. Each loser is
    a 400 naming the winner, and the rules that do land go last, in the order they
    committed."""
    path = f"/accessControlLists/{unique('acl')}"
    await create_acl(nc, path, [rule("first", 100)])
    responses = await asyncio.gather(
        *(
            nc.put(
                f"{path}/aclRules/rule-{i}",
                json={"properties": rule_properties(200, description=f"child {i}")},
            )
            for i in range(CLIENTS)
        )
    )
    assert_no_5xx(responses)
    assert Counter(r.status_code for r in responses) == {201: 1, 400: CLIENTS - 1}
    [winner] = [r.json()["resourceId"] for r in responses if r.status_code == 201]
    for response in responses:
        if response.status_code == 400:
            assert f"'{winner}'" in response.json()["error"]["message"]
    final = (await nc.get(path)).json()
    assert [r["resourceId"] for r in final["properties"]["aclRules"]] == ["first", winner]


# -- e. a reference racing a delete ----------------------------------------------------------


def subnet_properties(index: int, acl_ref: str) -> Json:
    return {
        "addressPrefix": f"10.{index // 256}.{index % 256}.0/24",
        "vlanID": index % 4000 + 1,
        "accessControlList": {"resourceRef": acl_ref},
    }


async def test_reference_racing_a_delete_never_both_win(nc: httpx.AsyncClient) -> None:
    rounds = 40
    shared = f"/logicalNetworks/{unique('ln')}"
    assert (await nc.put(shared, json={"properties": {}})).status_code == 201
    outcomes: Counter[str] = Counter()
    for index in range(rounds):
        acl_ref = f"/accessControlLists/{unique('acl')}"
        started = time.perf_counter()
        await create_acl(nc, acl_ref, [rule("r1", 100)])
        # A DELETE is cheaper than a PUT: hold it back by up to about one PUT's duration, more
        # in later rounds, so both orders and the interleavings between them come up.
        delete_delay = random.uniform(0, 2 * (time.perf_counter() - started) * index / rounds)
        if index % 2 == 0:
            # A new logical network with the referencing subnet embedded.
            network = f"/logicalNetworks/{unique('ln')}"
            put_path = network
            body: Json = {
                "properties": {
                    "subnets": [{"resourceId": "s1", "properties": subnet_properties(1, acl_ref)}]
                }
            }
            subnet_path = f"{network}/subnets/s1"
        else:
            # A new subnet PUT as a child of an existing logical network.
            subnet_path = put_path = f"{shared}/subnets/s-{index}"
            body = {"properties": subnet_properties(index, acl_ref)}

        async def put(path: str = put_path, payload: Json = body) -> httpx.Response:
            return await nc.put(path, json=payload)

        async def delete(path: str = acl_ref, delay: float = delete_delay) -> httpx.Response:
            await asyncio.sleep(delay)
            return await nc.delete(path)

        put_response, delete_response = await asyncio.gather(put(), delete())
        pair = [put_response, delete_response]
        assert_no_5xx(pair)
        acl_now = await nc.get(acl_ref)
        subnet_now = await nc.get(subnet_path)
        if put_response.status_code == 201:
            outcomes["reference won"] += 1
            assert delete_response.status_code == 409, describe(pair)
            assert error_code(delete_response) == "ResourceInUse"
            assert acl_now.status_code == 200
            assert subnet_now.status_code == 200
            subnet_ref = subnet_now.json()["resourceRef"]
            assert subnet_now.json()["properties"]["accessControlList"]["resourceRef"] == acl_ref
            assert {"resourceRef": subnet_ref} in acl_now.json()["properties"]["subnets"]
        else:
            outcomes["delete won"] += 1
            assert put_response.status_code == 400, describe(pair)
            assert error_code(put_response) == "InvalidReference"
            assert delete_response.status_code == 200, describe(pair)
            assert acl_now.status_code == 404
            assert subnet_now.status_code == 404
    print(f"outcomes over {rounds} rounds: {dict(outcomes)}")


# -- f. no half-applied writes ---------------------------------------------------------------


def client_rules(client: int, count: int) -> list[Json]:
    """Half the rules keep ids every client uses (updates), half are the client's own (inserts
    and deletes), so each write changes, adds and removes rows."""
    rules = []
    for j in range(count):
        rule_id = f"shared-{j}" if j < count // 2 else f"c{client}-{j}"
        rules.append(rule(rule_id, 100 + j, description=f"client {client}"))
    return rules


def spoil(rules: list[Json], client: int) -> list[Json]:
    """The same rule set with its last rule invalid, failing in different places of a PUT."""
    last = rules[-1]["properties"]
    match client % 3:
        case 0:  # refused by the ACL's validation, inside the write transaction
            last["priority"] = rules[0]["properties"]["priority"]
        case 1:  # mixes address families: also refused inside the transaction
            last["sourceAddressPrefix"] = "2001:db8::/32"
        case _:  # malformed: refused when the body is parsed
            last["destinationAddressPrefix"] = "10.0.0.300"
    return rules


async def test_no_half_applied_writes(nc: httpx.AsyncClient) -> None:
    count = 8
    for _ in range(3):
        path = f"/accessControlLists/{unique('acl')}"
        await create_acl(nc, path, client_rules(-1, count))
        valid = {
            client: client_rules(client, count) for client in range(CLIENTS) if client % 2 == 0
        }
        invalid = {
            client: spoil(client_rules(client, count), client)
            for client in range(CLIENTS)
            if client % 2 == 1
        }
        bodies = {**valid, **invalid}
        order = list(bodies)
        random.shuffle(order)
        responses = await asyncio.gather(*(nc.put(path, json=acl_body(bodies[c])) for c in order))
        by_client = dict(zip(order, responses, strict=True))
        assert_no_5xx(responses)
        assert all(by_client[c].status_code == 200 for c in valid), describe(responses)
        assert all(by_client[c].status_code == 400 for c in invalid), describe(responses)
        final = rule_set((await nc.get(path)).json())
        candidates = [rule_set(acl_body(rules)) for rules in valid.values()]
        assert final in candidates, sorted(final)
