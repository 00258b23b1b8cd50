"""servers (hosts) with their connections and physical networkInterfaces."""

from __future__ import annotations

import base64
import copy
import uuid

import httpx
import pytest

from tests.support import bodies
from tests.support.bodies import (
    connection,
    credential,
    ip_pool,
    logical_network,
    logical_subnet,
    network_interface,
)
from tests.support.nbi import (
    Json,
    assert_absent,
    assert_configuration_state,
    assert_delete_rejected,
    assert_put_rejected,
    child,
    delete,
    get,
    get_all,
    ids,
    props,
    put,
    refs,
    without_etags,
    without_read_times,
)

# SDN Express uses the host's vSwitch id as the server's resourceId.
SWITCH_ID = "5d4f8a1e-3b1c-4b7e-9a8f-0c2d6e4b1a93"
SERVER = f"/servers/{SWITCH_ID}"
NIC = f"{SERVER}/networkInterfaces/nic1"
PA_SUBNET = "/logicalNetworks/HNVPA/subnets/PA"
CERT = "/credentials/NCHostCert"
USER = "/credentials/NCHostUser"
# A (fake) DER blob as [Convert]::ToBase64String($cert.RawData) encodes it.
CERTIFICATE = base64.b64encode(b"0\x82\x01\xb3" + bytes(range(64))).decode()


async def create_fabric(client: httpx.AsyncClient) -> None:
    """What the server refers to: its two credentials and the HNV provider subnet."""
    await put(client, CERT, credential("X509Certificate", value="8E3F1A2B4C5D6E7F"))
    await put(
        client,
        USER,
        credential("UsernamePassword", userName="CONTOSO\\NCAdmin", value="Pa55!"),
    )
    subnet = logical_subnet(
        "PA",
        "10.10.56.0/23",
        ip_pool("PAPool", "10.10.56.10", "10.10.57.200"),
        vlanID="11",
        defaultGateways=["10.10.56.1"],
    )
    body = logical_network(subnet, networkVirtualizationEnabled="True")
    await put(client, "/logicalNetworks/HNVPA", body)


def nic(resource_id: str = "nic1", *subnets: str, is_bmc: object = False) -> Json:
    """A server NIC as New-NCServerNetworkInterface builds it (instanceId = resourceId)."""
    logical_subnets = subnets or ("/logicalnetworks/HNVPA/subnets/PA",)
    return network_interface(resource_id, *logical_subnets, instance_id=resource_id, isBMC=is_bmc)


def server(*nics: Json, **properties: object) -> Json:
    """A server as SDN Express's Add-SDNExpressHost sends it: two connections."""
    members: Json = {
        "networkInterfaces": list(nics) if nics else [nic()],
        "certificate": CERTIFICATE,
        **properties,
    }
    return bodies.server(
        connection("/credentials/NCHostCert", "X509Certificate", port="6645"),
        connection("/credentials/NCHostUser", "usernamePassword"),
        resource_id=SWITCH_ID,
        instance_id=SWITCH_ID,
        **members,
    )


def with_connection(member: str, value: object, index: int = 0) -> Json:
    body = server()
    body["properties"]["connections"][index][member] = value
    return body


# -- accepted input and canonical output ------------------------------------------------


async def test_sdn_express_host_is_created_and_canonical(client: httpx.AsyncClient) -> None:
    await create_fabric(client)
    created = await put(client, f"/Servers/{SWITCH_ID}", server(), status=201)

    assert created["resourceRef"] == SERVER
    assert uuid.UUID(created["instanceId"])
    # No host agent of this server is connected (yet).
    state = assert_configuration_state(created, "Failure", "HostNotConnectedToController")
    # Named as an operator names it: by resourceRef, not instanceId.
    assert state["detailedInfo"][0]["message"] == (
        f"no host agent of server {SERVER} is connected to the controller"
    )
    assert props(created) | {"networkInterfaces": None} == {
        "provisioningState": "Succeeded",
        "configurationState": state,
        "connections": [
            {
                "managementAddresses": ["host1.contoso.com"],
                "credential": {"resourceRef": CERT},
                "credentialType": "X509Certificate",
                "port": 6645,
            },
            {
                "managementAddresses": ["host1.contoso.com"],
                "credential": {"resourceRef": USER},
                "credentialType": "UsernamePassword",
            },
        ],
        "certificate": CERTIFICATE,
        "networkInterfaces": None,
        "virtualNetworkInterfaces": [],
    }
    embedded = child(created, "networkInterfaces", "nic1")
    assert embedded["resourceRef"] == NIC
    assert embedded["etag"] == created["etag"]
    assert props(embedded) == {
        "provisioningState": "Succeeded",
        "isBMC": False,
        "logicalSubnets": [{"resourceRef": PA_SUBNET}],
    }
    fetched = await get(client, SERVER.upper().replace("/SERVERS/", "/servers/"))
    assert without_read_times(fetched) == without_read_times(created)
    assert await get(client, NIC) == embedded


async def test_whole_credential_object_is_accepted_as_the_reference(
    client: httpx.AsyncClient,
) -> None:
    """The NetworkController module serialises the credential object it was given."""
    await create_fabric(client)
    credential = await get(client, CERT)
    body = server()
    body["properties"]["connections"] = [
        {
            "ManagementAddresses": ["10.184.108.21"],
            "Credential": credential,
            "CredentialType": "X509CERTIFICATE",
        }
    ]
    created = await put(client, SERVER, body)
    assert props(created)["connections"] == [
        {
            "managementAddresses": ["10.184.108.21"],
            "credential": {"resourceRef": CERT},
            "credentialType": "X509Certificate",
        }
    ]


@pytest.mark.parametrize(
    ("credential", "subnet"),
    [
        ("/Credentials/nchostcert", "/LogicalNetworks/hnvpa/Subnets/pa"),
        (
            "/networking/v1/credentials/NCHostCert",
            "/Networking/v1/logicalNetworks/HNVPA/subnets/PA",
        ),
        ("/credentials/NCHostCert/", "/logicalNetworks/HNVPA/logicalSubnets/PA"),
    ],
    ids=["casing", "versioned", "alias"],
)
async def test_reference_spellings_are_stored_canonical(
    client: httpx.AsyncClient, credential: str, subnet: str
) -> None:
    await create_fabric(client)
    body = server(nic("nic1", subnet))
    body["properties"]["connections"][0]["credential"] = {"ResourceRef": credential}
    created = await put(client, SERVER, body)
    assert props(created)["connections"][0]["credential"] == {"resourceRef": CERT}
    assert props(child(created, "networkInterfaces", "nic1"))["logicalSubnets"] == [
        {"resourceRef": PA_SUBNET}
    ]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("10.184.108.21", "10.184.108.21"),
        ("FD00:0:0::0021", "fd00::21"),
        ("HOST1", "HOST1"),
        ("host1.contoso.com.", "host1.contoso.com."),
        ("sdn-host-01.corp.contoso.com", "sdn-host-01.corp.contoso.com"),
    ],
)
async def test_management_addresses_are_ip_addresses_or_host_names(
    client: httpx.AsyncClient, sent: str, stored: str
) -> None:
    await create_fabric(client)
    created = await put(client, SERVER, with_connection("managementAddresses", [sent]))
    assert props(created)["connections"][0]["managementAddresses"] == [stored]


async def test_minimal_server_without_certificate_or_nics(client: httpx.AsyncClient) -> None:
    await create_fabric(client)
    body = {
        "properties": {
            "connections": [{"managementAddresses": ["host2"], "credential": {"resourceRef": CERT}}]
        }
    }
    created = await put(client, "/servers/host2", body, status=201)
    assert props(created)["networkInterfaces"] == []
    assert "certificate" not in props(created)
    assert ids(await get_all(client, "/servers")) == ["host2"]


async def test_logical_subnet_lists_the_server_nics_attached_to_it(
    client: httpx.AsyncClient,
) -> None:
    await create_fabric(client)
    await put(client, SERVER, server(nic("nic1"), nic("nic2", PA_SUBNET, is_bmc="True")))

    subnet = await get(client, PA_SUBNET)
    assert refs(props(subnet)["networkInterfaces"]) == [NIC, f"{SERVER}/networkInterfaces/nic2"]
    listed = {n["resourceId"]: n for n in await get_all(client, "/logicalNetworks")}
    assert (
        props(child(listed["HNVPA"], "subnets", "PA"))["networkInterfaces"]
        == props(subnet)["networkInterfaces"]
    )
    assert props(await get(client, f"{SERVER}/networkInterfaces/nic2"))["isBMC"] is True


async def test_nic_written_at_its_own_uri(client: httpx.AsyncClient) -> None:
    await create_fabric(client)
    created = await put(client, SERVER, server(nic("nic1")))
    added = await put(client, f"{SERVER}/networkInterfaces/nic2", nic("nic2"), status=201)
    assert added["etag"] != created["etag"]
    assert (await get(client, SERVER))["etag"] == added["etag"]
    listed = await get_all(client, f"{SERVER}/networkInterfaces")
    assert ids(listed) == ["nic1", "nic2"]
    assert len(props(await get(client, PA_SUBNET))["networkInterfaces"]) == 2


async def test_re_put_of_what_get_returned_is_accepted(client: httpx.AsyncClient) -> None:
    await create_fabric(client)
    await put(client, SERVER, server())
    fetched = await get(client, SERVER)
    # configurationState is read-only: echoed back, it is ignored.
    assert "configurationState" in props(fetched)
    rewritten = await put(client, SERVER, fetched, status=200)
    assert without_read_times(without_etags(rewritten)) == without_read_times(
        without_etags(fetched)
    )
    assert rewritten["instanceId"] == fetched["instanceId"]
    assert props(rewritten)["connections"] == props(fetched)["connections"]
    assert (
        child(rewritten, "networkInterfaces", "nic1")["instanceId"]
        == child(fetched, "networkInterfaces", "nic1")["instanceId"]
    )


async def test_deleting_nic_then_server_releases_subnet_and_credentials(
    client: httpx.AsyncClient,
) -> None:
    await create_fabric(client)
    await put(client, SERVER, server())
    await delete(client, NIC)
    await delete(client, NIC, status=204)
    assert props(await get(client, PA_SUBNET))["networkInterfaces"] == []
    await delete(client, PA_SUBNET)

    await delete(client, SERVER)
    await assert_absent(client, SERVER)
    await delete(client, SERVER, status=204)
    await delete(client, CERT)
    await delete(client, USER)


# -- references and referential integrity ----------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        "/credentials/Missing",
        "/macPools/NCHostCert",
        "/logicalNetworks/HNVPA",
        "not-a-reference",
        "/credentials",
    ],
)
async def test_connection_credential_must_reference_an_existing_credential(
    client: httpx.AsyncClient, reference: str
) -> None:
    await create_fabric(client)
    body = with_connection("credential", {"resourceRef": reference}, index=1)
    await assert_put_rejected(
        client,
        SERVER,
        body,
        code="InvalidReference",
        target=f"servers/{SWITCH_ID}/properties/connections/credential",
    )
    await assert_absent(client, SERVER)


async def test_credential_reference_is_checked_on_update_too(client: httpx.AsyncClient) -> None:
    await create_fabric(client)
    await put(client, SERVER, server())
    body = with_connection("credential", {"resourceRef": "/credentials/Gone"})
    await assert_put_rejected(
        client,
        SERVER,
        body,
        code="InvalidReference",
        target="properties/connections/credential",
        watch=(NIC, CERT),
    )


@pytest.mark.parametrize(
    "reference",
    [
        "/logicalNetworks/HNVPA/subnets/Missing",
        "/logicalNetworks/Missing/subnets/PA",
        "/logicalNetworks/HNVPA",
    ],
)
async def test_nic_logical_subnets_must_exist(client: httpx.AsyncClient, reference: str) -> None:
    await create_fabric(client)
    await assert_put_rejected(
        client,
        SERVER,
        server(nic("nic1", reference)),
        code="InvalidReference",
        target="networkInterfaces/nic1/properties/logicalSubnets",
    )
    await put(client, SERVER, server())
    await assert_put_rejected(
        client,
        f"{SERVER}/networkInterfaces/nic2",
        nic("nic2", PA_SUBNET, reference),
        code="InvalidReference",
        target="networkInterfaces/nic2/properties/logicalSubnets",
    )
    await assert_absent(client, f"{SERVER}/networkInterfaces/nic2")


async def test_credential_used_by_a_server_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    await create_fabric(client)
    await put(client, SERVER, server())
    for used in (CERT, USER):
        error = await assert_delete_rejected(client, used, target=used, watch=(SERVER,))
        assert [d["target"] for d in error["details"]] == [SERVER]


async def test_logical_subnet_used_by_a_server_nic_cannot_be_removed(
    client: httpx.AsyncClient,
) -> None:
    await create_fabric(client)
    await put(client, SERVER, server())
    error = await assert_delete_rejected(client, PA_SUBNET, target=PA_SUBNET, watch=(NIC,))
    assert [d["target"] for d in error["details"]] == [NIC]
    await assert_delete_rejected(client, "/logicalNetworks/HNVPA", target=PA_SUBNET, watch=(NIC,))
    # Nor may a re-PUT of the logical network drop it.
    await assert_put_rejected(
        client,
        "/logicalNetworks/HNVPA",
        {"properties": {"networkVirtualizationEnabled": True, "subnets": []}},
        status=409,
        code="ResourceInUse",
        target=PA_SUBNET,
        watch=(PA_SUBNET, NIC),
    )
    # The pools of the subnet are not what the NIC references.
    await delete(client, f"{PA_SUBNET}/ipPools/PAPool")


async def test_referenced_resources_may_still_be_rewritten(client: httpx.AsyncClient) -> None:
    """Replacing a credential or the logical network the server uses keeps the links, as long
    as nothing the server references goes away."""
    await create_fabric(client)
    await put(client, SERVER, server())
    await put(client, CERT, await get(client, CERT), status=200)
    await put(
        client, "/logicalNetworks/HNVPA", await get(client, "/logicalNetworks/HNVPA"), status=200
    )
    await put(client, PA_SUBNET, await get(client, PA_SUBNET), status=200)

    assert refs(props(await get(client, PA_SUBNET))["networkInterfaces"]) == [NIC]
    await assert_delete_rejected(client, CERT, target=CERT)
    await assert_delete_rejected(client, PA_SUBNET, target=PA_SUBNET)


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("connections", [None, [], "absent"], ids=repr)
async def test_a_server_needs_at_least_one_connection(
    client: httpx.AsyncClient, connections: object
) -> None:
    await create_fabric(client)
    body = server()
    if connections == "absent":
        del body["properties"]["connections"]
    else:
        body["properties"]["connections"] = connections
    await assert_put_rejected(client, SERVER, body, target="properties.connections")
    await assert_absent(client, SERVER)


@pytest.mark.parametrize(
    "address",
    ["bad host", "10.0.0.256", "host_1.contoso.com", "-host1", "host1..contoso.com", "a" * 64, ""],
    ids=repr,
)
async def test_management_address_must_be_an_ip_or_host_name(
    client: httpx.AsyncClient, address: str
) -> None:
    await create_fabric(client)
    body = with_connection("managementAddresses", ["host1.contoso.com", address])
    await assert_put_rejected(client, SERVER, body, target="connections[0].managementAddresses[1]")


@pytest.mark.parametrize(
    ("member", "value", "target"),
    [
        ("managementAddresses", [], "managementAddresses"),
        ("managementAddresses", "host1", "managementAddresses"),
        ("credential", None, "credential"),
        ("credentialType", "Kerberos", "credentialType"),
        ("port", 0, "port"),
        ("port", "65536", "port"),
        ("port", "https", "port"),
    ],
    ids=repr,
)
async def test_connection_members_must_be_valid(
    client: httpx.AsyncClient, member: str, value: object, target: str
) -> None:
    await create_fabric(client)
    await assert_put_rejected(
        client, SERVER, with_connection(member, value), target=f"connections[0].{target}"
    )


@pytest.mark.parametrize("certificate", ["not base64!", "QUJD=", "QUJ", 12], ids=repr)
async def test_certificate_must_be_base64(client: httpx.AsyncClient, certificate: object) -> None:
    await create_fabric(client)
    await assert_put_rejected(
        client,
        SERVER,
        server(certificate=certificate),
        target=f"servers/{SWITCH_ID}/properties/certificate",
    )
    await assert_absent(client, SERVER)


async def test_invalid_update_leaves_the_server_unchanged(client: httpx.AsyncClient) -> None:
    await create_fabric(client)
    await put(client, SERVER, server())
    await assert_put_rejected(
        client, SERVER, server(certificate="%%%"), target="properties/certificate", watch=(NIC,)
    )
    await assert_put_rejected(client, NIC, nic("nic1", is_bmc="maybe"), target="properties.isBMC")
    bad_nic = copy.deepcopy(nic())
    bad_nic["properties"]["logicalSubnets"] = "/logicalNetworks/HNVPA/subnets/PA"
    await assert_put_rejected(client, NIC, bad_nic, target="properties.logicalSubnets")
