"""publicIPAddresses: Static and Dynamic VIPs of the public VIP pools, their binding to one NIC
ipConfiguration or frontend (shown as ``ipConfiguration``), and what deleting one in use
means (409 naming the user: it stays bound until the user lets go)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import ip_configuration, nic, ref
from tests.support.nbi import (
    assert_absent,
    assert_delete_rejected,
    assert_error,
    assert_put_rejected,
    child,
    delete,
    get,
    props,
    put,
    put_raw,
)
from tests.support.slb import (
    MANAGER,
    PRIVATE_POOL,
    PUBLIC_ADDRESSES,
    WEB,
    frontend,
    load_balancer,
    manager,
    public_ip,
    slb_fabric,
)

PIP = "/publicIPAddresses/PIP1"
NIC = "/networkInterfaces/WebVM1_Nic1"
CONFIG = f"{NIC}/ipConfigurations/ip1"


@pytest.fixture
async def fabric(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await slb_fabric(client)
    return client


def address(resource: dict[str, object]) -> str:
    found = props(resource)["ipAddress"]  # type: ignore[arg-type]
    assert isinstance(found, str)
    return found


async def test_a_dynamic_public_ip_comes_from_the_public_vip_pool(
    fabric: httpx.AsyncClient,
) -> None:
    created = await put(fabric, PIP, public_ip(), status=201)
    assert props(created) == {
        "provisioningState": "Succeeded",
        "ipAddress": PUBLIC_ADDRESSES[0],
        "publicIPAllocationMethod": "Dynamic",
        "idleTimeoutInMinutes": 4,
        "publicIPAddressVersion": "IPv4",
        "counters": [],
    }
    # Kept over re-PUTs, whether the client echoes it or not.
    assert address(await put(fabric, PIP, public_ip(), status=200)) == PUBLIC_ADDRESSES[0]
    assert address(await put(fabric, PIP, created, status=200)) == PUBLIC_ADDRESSES[0]
    second = await put(fabric, "/publicIPAddresses/PIP2", public_ip(idleTimeoutInMinutes="30"))
    assert address(second) == PUBLIC_ADDRESSES[1]
    assert props(second)["idleTimeoutInMinutes"] == 30


async def test_a_static_public_ip_must_lie_in_a_public_vip_pool(fabric: httpx.AsyncClient) -> None:
    created = await put(fabric, PIP, public_ip("41.40.40.12"), status=201)
    assert props(created)["publicIPAllocationMethod"] == "Static"
    assert address(created) == "41.40.40.12"
    # The private VIP pool is not public; the public subnet outside its pool is no VIP.
    for outside in ("20.20.20.8", "41.40.40.20", "8.8.8.8"):
        await assert_put_rejected(
            fabric, "/publicIPAddresses/PIP2", public_ip(outside), target="properties/ipAddress"
        )


async def test_a_held_address_is_refused(fabric: httpx.AsyncClient) -> None:
    await put(fabric, PIP, public_ip("41.40.40.12"))
    error = await assert_put_rejected(
        fabric,
        "/publicIPAddresses/PIP2",
        public_ip("41.40.40.12"),
        target="properties/ipAddress",
        code="IpAddressInUse",
        status=409,
    )
    assert PIP in error["message"]
    # Dynamic allocation steps over it (after the highest address held, then the gaps).
    dynamic = [
        address(await put(fabric, f"/publicIPAddresses/D{i}", public_ip())) for i in range(7)
    ]
    assert dynamic[:3] == ["41.40.40.13", "41.40.40.14", "41.40.40.15"]
    assert set(dynamic) == set(PUBLIC_ADDRESSES) - {"41.40.40.12"}


async def test_the_pool_runs_out_with_a_clear_409(fabric: httpx.AsyncClient) -> None:
    for i in range(len(PUBLIC_ADDRESSES)):
        await put(fabric, f"/publicIPAddresses/P{i}", public_ip())
    error = await assert_put_rejected(
        fabric,
        "/publicIPAddresses/OneTooMany",
        public_ip(),
        target="properties/ipAddress",
        code="IpAddressExhausted",
        status=409,
    )
    assert "PublicVIP_0" in error["message"]
    # A deleted public IP's address is free again at once.
    await delete(fabric, "/publicIPAddresses/P3")
    again = await put(fabric, "/publicIPAddresses/OneTooMany", public_ip(), status=201)
    assert address(again) == PUBLIC_ADDRESSES[3]


async def test_without_a_public_vip_pool_dynamic_public_ips_are_exhausted(
    fabric: httpx.AsyncClient,
) -> None:
    await put(fabric, MANAGER, manager(PRIVATE_POOL))
    error = await assert_put_rejected(
        fabric,
        PIP,
        public_ip(),
        target="properties/ipAddress",
        code="IpAddressExhausted",
        status=409,
    )
    assert "isPublic" in error["message"]


async def test_changing_a_static_address_releases_the_old_one(fabric: httpx.AsyncClient) -> None:
    await put(fabric, PIP, public_ip("41.40.40.9"))
    moved = await put(fabric, PIP, public_ip("41.40.40.10"), status=200)
    assert address(moved) == "41.40.40.10"
    taken = await put(fabric, "/publicIPAddresses/PIP2", public_ip("41.40.40.9"), status=201)
    assert address(taken) == "41.40.40.9"


@pytest.mark.parametrize(
    ("properties", "target"),
    [
        ({"idleTimeoutInMinutes": 3}, "properties.idleTimeoutInMinutes"),
        ({"idleTimeoutInMinutes": "31"}, "properties.idleTimeoutInMinutes"),
        ({"idleTimeoutInMinutes": True}, "properties.idleTimeoutInMinutes"),
        ({"publicIPAllocationMethod": "Static"}, "properties/ipAddress"),
        ({"publicIPAllocationMethod": "Sometimes"}, "properties.publicIPAllocationMethod"),
        ({"publicIPAddressVersion": "IPv6"}, "properties.publicIPAddressVersion"),
        ({"ipAddress": "41.40.40"}, "properties.ipAddress"),
    ],
)
async def test_bad_public_ips_are_refused_naming_the_member(
    fabric: httpx.AsyncClient, properties: dict[str, object], target: str
) -> None:
    await assert_put_rejected(fabric, PIP, {"properties": properties}, target=target)


async def test_a_public_ip_on_a_nic_is_bound_to_it(fabric: httpx.AsyncClient) -> None:
    await put(fabric, PIP, public_ip("41.40.40.9"))
    body = nic(ip_configuration("ip1", WEB, publicIPAddress=ref("/PUBLICIPADDRESSES/pip1")))
    created = await put(fabric, NIC, body, status=201)
    assert props(child(created, "ipConfigurations", "ip1"))["publicIPAddress"] == ref(PIP)
    assert props(await get(fabric, PIP))["ipConfiguration"] == ref(CONFIG)
    # In use: it cannot be deleted (409 naming the NIC's ipConfiguration) ...
    error = await assert_delete_rejected(fabric, PIP, target=PIP)
    assert error["details"][0]["target"] == CONFIG
    # ... until the NIC lets go of it.
    await put(fabric, NIC, nic(ip_configuration("ip1", WEB)), status=200)
    assert "ipConfiguration" not in props(await get(fabric, PIP))
    await delete(fabric, PIP)
    await assert_absent(fabric, PIP)


async def test_a_dangling_public_ip_reference_is_refused(fabric: httpx.AsyncClient) -> None:
    body = nic(ip_configuration("ip1", WEB, publicIPAddress=ref("/publicIPAddresses/nope")))
    await assert_put_rejected(
        fabric,
        NIC,
        body,
        target="ipConfigurations/ip1/properties/publicIPAddress",
        code="InvalidReference",
    )


async def test_a_public_ip_is_bound_to_one_user_only(fabric: httpx.AsyncClient) -> None:
    await put(fabric, PIP, public_ip())
    with_pip = {"publicIPAddress": ref(PIP)}
    # Two ipConfigurations of one body: 400.
    both = nic(ip_configuration("ip1", WEB, **with_pip), ip_configuration("ip2", WEB, **with_pip))
    await assert_put_rejected(
        fabric, NIC, both, target="ipConfigurations/ip2/properties/publicIPAddress"
    )
    await put(fabric, NIC, nic(ip_configuration("ip1", WEB, **with_pip)), status=201)
    # Another ipConfiguration of the NIC, written at its own URI (alone): 400 naming ip1.
    error = await assert_put_rejected(
        fabric,
        f"{NIC}/ipConfigurations/ip2",
        ip_configuration("ip2", WEB, **with_pip),
        target="ipConfigurations/ip2/properties/publicIPAddress",
    )
    assert CONFIG in error["message"]
    # Rewriting the holder at its own URI keeps the binding: it is its own.
    await put(fabric, CONFIG, ip_configuration("ip1", WEB, **with_pip), status=200)
    # Another NIC, or a load balancer frontend: 409 naming the holder.
    other = nic(ip_configuration("ip1", WEB, **with_pip))
    error = await assert_put_rejected(
        fabric,
        "/networkInterfaces/Other",
        other,
        target="ipConfigurations/ip1/properties/publicIPAddress",
        code="ResourceInUse",
        status=409,
    )
    assert CONFIG in error["message"]
    lb = load_balancer(frontends=(frontend("FE1", None, publicIPAddress=ref(PIP)),))
    await assert_put_rejected(
        fabric,
        "/loadBalancers/LB1",
        lb,
        target="frontendIPConfigurations/FE1/properties/publicIPAddress",
        code="ResourceInUse",
        status=409,
    )
    # The binding survives a re-PUT of its holder.
    await put(fabric, NIC, nic(ip_configuration("ip1", WEB, **with_pip)), status=200)
    assert props(await get(fabric, PIP))["ipConfiguration"] == ref(CONFIG)


async def test_a_public_ip_on_a_frontend_shows_the_frontend(fabric: httpx.AsyncClient) -> None:
    pip = await put(fabric, PIP, public_ip())
    lb = load_balancer(frontends=(frontend("FE1", None, publicIPAddress=ref(PIP)),))
    created = await put(fabric, "/loadBalancers/LB1", lb, status=201)
    fe = child(created, "frontendIPConfigurations", "FE1")
    assert "privateIPAddress" not in props(fe)
    assert props(fe)["publicIPAddress"] == ref(PIP)
    assert props(await get(fabric, PIP))["ipConfiguration"] == ref(fe["resourceRef"])
    # The frontend holds no address of its own: the pool still hands out the rest.
    assert address(pip) == PUBLIC_ADDRESSES[0]
    other = await put(fabric, "/publicIPAddresses/PIP2", public_ip())
    assert address(other) == PUBLIC_ADDRESSES[1]


async def test_powershell_style_public_ip(fabric: httpx.AsyncClient) -> None:
    body = {
        "resourceId": "PIP1",
        "ResourceRef": None,
        "Properties": {
            "IpAddress": "41.40.40.11",
            "PublicIPAllocationMethod": "static",
            "IdleTimeoutInMinutes": "4",
            "IpConfiguration": {"resourceRef": "/networkInterfaces/x/ipConfigurations/y"},
            "ProvisioningState": None,
        },
    }
    response = await put_raw(fabric, PIP, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert address(created) == "41.40.40.11"
    assert props(created)["publicIPAllocationMethod"] == "Static"
    # The echoed read-only ipConfiguration was ignored.
    assert "ipConfiguration" not in props(created)


async def test_a_delete_of_a_missing_public_ip_is_204(fabric: httpx.AsyncClient) -> None:
    assert_error(await fabric.get("/networking/v1/publicIPAddresses/nope"), 404, "NotFound")
    await delete(fabric, "/publicIPAddresses/nope", status=204)
