"""The fabric singletons virtualNetworkManager/configuration and
virtualSwitchManager/configuration: present from the start, replaced by PUT, never deleted."""

from __future__ import annotations

import httpx
import pytest

from tests.support.nbi import assert_error, assert_etag, assert_put_rejected, get, props, put

VNM = "/virtualNetworkManager/configuration"
VSM = "/virtualSwitchManager/configuration"


@pytest.mark.parametrize(
    ("path", "defaults"),
    [
        (VNM, {"networkVirtualizationProtocol": "Vxlan"}),
        (VSM, {"qosSettings": {}}),
    ],
    ids=["virtualNetworkManager", "virtualSwitchManager"],
)
async def test_singleton_exists_with_defaults_before_any_put(
    client: httpx.AsyncClient, path: str, defaults: dict[str, object]
) -> None:
    found = await get(client, path)
    assert found["resourceId"] == "configuration"
    assert found["resourceRef"] == path
    assert_etag(found["etag"])
    assert props(found) == {"provisioningState": "Succeeded", **defaults}


@pytest.mark.parametrize("path", [VNM, VSM], ids=["virtualNetworkManager", "virtualSwitchManager"])
async def test_singleton_cannot_be_deleted(client: httpx.AsyncClient, path: str) -> None:
    before = await get(client, path)
    response = await client.delete(f"/networking/v1{path}")
    assert_error(response, 405, "MethodNotAllowed")
    assert await get(client, path) == before


@pytest.mark.parametrize(
    "path",
    ["/virtualNetworkManager/other", "/virtualSwitchManager/default"],
    ids=["virtualNetworkManager", "virtualSwitchManager"],
)
async def test_only_the_configuration_id_exists(client: httpx.AsyncClient, path: str) -> None:
    response = await client.put(f"/networking/v1{path}", json={"properties": {}})
    assert_error(response, 404, "NotFound")
    response = await client.get(f"/networking/v1{path}")
    assert_error(response, 404, "NotFound")


async def test_path_casing_reaches_the_singleton(client: httpx.AsyncClient) -> None:
    expected = await get(client, VNM)
    assert await get(client, "/Networking/V1/VirtualNetworkManager/Configuration") == expected


# -- virtualNetworkManager ------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["NvGRE", "NVGRE", "nvgre"])
async def test_encapsulation_protocol_is_canonical(
    client: httpx.AsyncClient, spelling: str
) -> None:
    """Set-NetworkControllerVirtualNetworkConfiguration sends the whole object back."""
    before = await get(client, VNM)
    body = {
        "resourceId": "configuration",
        "resourceRef": VNM,
        "etag": before["etag"],
        "instanceId": before["instanceId"],
        "tags": None,
        "resourceMetadata": None,
        "properties": {"provisioningState": "Succeeded", "NetworkVirtualizationProtocol": spelling},
    }
    updated = await put(client, VNM, body, status=200)
    assert props(updated)["networkVirtualizationProtocol"] == "NvGRE"
    assert updated["instanceId"] == before["instanceId"]
    assert updated["etag"] != before["etag"]
    assert await get(client, VNM) == updated


async def test_put_replaces_so_an_empty_body_restores_the_default(
    client: httpx.AsyncClient,
) -> None:
    await put(client, VNM, {"properties": {"networkVirtualizationProtocol": "NvGRE"}})
    restored = await put(client, VNM, {"properties": {}}, status=200)
    assert props(restored)["networkVirtualizationProtocol"] == "Vxlan"


@pytest.mark.parametrize("protocol", ["GRE", "Geneve", "", 4])
async def test_unknown_protocol_is_rejected(client: httpx.AsyncClient, protocol: object) -> None:
    await assert_put_rejected(
        client,
        VNM,
        {"properties": {"networkVirtualizationProtocol": protocol}},
        target="properties.networkVirtualizationProtocol",
    )


async def test_body_resource_id_must_be_configuration(client: httpx.AsyncClient) -> None:
    await assert_put_rejected(
        client,
        VNM,
        {"resourceId": "default", "properties": {}},
        code="ResourceIdMismatch",
        target="resourceId",
    )


# -- virtualSwitchManager -------------------------------------------------------------


async def test_qos_settings_sent_as_strings_are_typed(client: httpx.AsyncClient) -> None:
    body = {
        "resourceId": "configuration",
        "properties": {
            "QosSettings": {
                "ReservationMode": "absolute",
                "EnableSoftwareReservations": "True",
                "EnableHardwareLimits": "false",
                "enableHardwareReservations": "TRUE",
                "LinkSpeedPercentage": "80",
                "DefaultReservation": "0",
            }
        },
    }
    updated = await put(client, "/virtualswitchmanager/configuration", body, status=200)
    assert props(updated) == {
        "provisioningState": "Succeeded",
        "qosSettings": {
            "reservationMode": "Absolute",
            "enableSoftwareReservations": True,
            "enableHardwareLimits": False,
            "enableHardwareReservations": True,
            "linkSpeedPercentage": 80,
            "defaultReservation": 0,
        },
    }
    assert await get(client, VSM) == updated


async def test_weight_mode_without_hardware_reservations_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "properties": {"qosSettings": {"reservationMode": "WEIGHT", "enableHardwareLimits": True}}
    }
    updated = await put(client, VSM, body)
    assert props(updated)["qosSettings"] == {
        "reservationMode": "Weight",
        "enableHardwareLimits": True,
    }
    cleared = await put(client, VSM, {"properties": {"qosSettings": None}}, status=200)
    assert props(cleared)["qosSettings"] == {}


@pytest.mark.parametrize(
    ("qos", "target"),
    [
        pytest.param(
            {"reservationMode": "Weight", "enableHardwareReservations": "true"},
            "configuration/properties/qosSettings/reservationMode",
            id="hardware-reservations-need-absolute",
        ),
        pytest.param(
            {"reservationMode": "Relative"},
            "properties.qosSettings.reservationMode",
            id="unknown-mode",
        ),
        pytest.param(
            {"linkSpeedPercentage": 101},
            "properties.qosSettings.linkSpeedPercentage",
            id="percentage-above-100",
        ),
        pytest.param(
            {"linkSpeedPercentage": "-1"},
            "properties.qosSettings.linkSpeedPercentage",
            id="percentage-negative",
        ),
        pytest.param(
            {"defaultReservation": -5},
            "properties.qosSettings.defaultReservation",
            id="reservation-negative",
        ),
        pytest.param(
            {"enableSoftwareReservations": "sometimes"},
            "properties.qosSettings.enableSoftwareReservations",
            id="not-a-boolean",
        ),
    ],
)
async def test_invalid_qos_settings_leave_the_configuration_unchanged(
    client: httpx.AsyncClient, qos: dict[str, object], target: str
) -> None:
    await put(client, VSM, {"properties": {"qosSettings": {"reservationMode": "Absolute"}}})
    await assert_put_rejected(client, VSM, {"properties": {"qosSettings": qos}}, target=target)
