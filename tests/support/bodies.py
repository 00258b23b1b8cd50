"""Request bodies the API tests keep sending, as small factories.

Keyword arguments are wire members, sent as given (``userName=...``, ``vlanID="7"``,
``accessControlList=ref(...)``), so a test shows the values it is about; a member passed as
``None`` is sent as JSON null. ``resource_id=None`` leaves ``resourceId`` out (a body PUT at
its own URI needs none). A top-level body always states its child list (``acl()`` sends
``"aclRules": []``, which deletes stored rules on a re-PUT); a subnet names ``ipPools`` only
when pools are given, so a subnet PUT keeps the pools already stored.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


def _resource(resource_id: str | None, properties: Json) -> Json:
    body: Json = {} if resource_id is None else {"resourceId": resource_id}
    body["properties"] = properties
    return body


def ref(path: str) -> Json:
    """A reference to the resource at ``path``."""
    return {"resourceRef": path}


def cmdlet_body(resource_id: str, **properties: object) -> Json:
    """How the NetworkController PowerShell module serialises a New-NetworkController* object:
    every envelope member present, unset ones (and the read-only properties) as null."""
    return {
        "resourceId": resource_id,
        "resourceRef": None,
        "instanceId": None,
        "etag": None,
        "tags": None,
        "resourceMetadata": None,
        "properties": {"provisioningState": None, "configurationState": None, **properties},
    }


# -- accessControlLists -----------------------------------------------------------------


def acl_rule_properties(priority: object = 100, **overrides: object) -> Json:
    """The properties of an inbound rule allowing TCP to port 80 from anywhere to anywhere."""
    properties: Json = {
        "protocol": "TCP",
        "sourcePortRange": "*",
        "destinationPortRange": "80",
        "sourceAddressPrefix": "*",
        "destinationAddressPrefix": "*",
        "action": "Allow",
        "priority": priority,
        "type": "Inbound",
    }
    properties.update(overrides)
    return properties


def acl_rule(resource_id: str, priority: object = 100, **overrides: object) -> Json:
    """An aclRule: ``acl_rule_properties`` with ``overrides``."""
    return _resource(resource_id, acl_rule_properties(priority, **overrides))


def acl(*rules: Json, resource_id: str | None = None, **properties: object) -> Json:
    """An accessControlList with exactly ``rules``."""
    return _resource(resource_id, {"aclRules": list(rules), **properties})


# -- credentials and macPools -----------------------------------------------------------


def credential(kind: str, *, resource_id: str | None = None, **properties: object) -> Json:
    """A credential of type ``kind`` (``X509Certificate``, ``UsernamePassword``, ...)."""
    return _resource(resource_id, {"type": kind, **properties})


def mac_pool(start: object, end: object, *, resource_id: str | None = None) -> Json:
    """A macPool from ``start`` to ``end`` (any value: validation tests send bad ones)."""
    return _resource(resource_id, {"startMacAddress": start, "endMacAddress": end})


# -- logicalNetworks --------------------------------------------------------------------


def ip_pool(resource_id: str | None, start: str, end: str) -> Json:
    return _resource(resource_id, {"startIpAddress": start, "endIpAddress": end})


def logical_subnet(
    resource_id: str | None, prefix: str, *pools: Json, **properties: object
) -> Json:
    """A subnet of ``prefix``; ``ipPools`` is sent only when ``pools`` are given."""
    body = _resource(resource_id, {"addressPrefix": prefix, **properties})
    if pools:
        body["properties"]["ipPools"] = list(pools)
    return body


def logical_network(*subnets: Json, resource_id: str | None = None, **properties: object) -> Json:
    """A logicalNetwork with exactly ``subnets``."""
    return _resource(resource_id, {"subnets": list(subnets), **properties})


# -- servers ----------------------------------------------------------------------------


def connection(
    credential_path: str,
    credential_type: str = "X509Certificate",
    *,
    address: str = "host1.contoso.com",
    **members: object,
) -> Json:
    """A server connection to ``address`` with the credential at ``credential_path``."""
    return {
        "managementAddresses": [address],
        "credential": ref(credential_path),
        "credentialType": credential_type,
        **members,
    }


def network_interface(
    resource_id: str, *logical_subnets: str, instance_id: str | None = None, **properties: object
) -> Json:
    """A server networkInterface attached to the subnets at paths ``logical_subnets``;
    ``instance_id`` as New-NCServerNetworkInterface sets it (to the resourceId)."""
    body = _resource(
        resource_id, {"logicalSubnets": [ref(s) for s in logical_subnets], **properties}
    )
    if instance_id is not None:
        body["instanceId"] = instance_id
    return body


def server(
    *connections: Json,
    resource_id: str | None = None,
    instance_id: str | None = None,
    **properties: object,
) -> Json:
    """A server with ``connections`` (networkInterfaces, certificate, ... as ``properties``);
    ``instance_id`` as SDN Express sets it (to the resourceId, the host's vSwitch id)."""
    body = _resource(resource_id, {"connections": list(connections), **properties})
    if instance_id is not None:
        body["instanceId"] = instance_id
    return body


# -- routeTables ------------------------------------------------------------------------


def route(
    resource_id: str,
    prefix: str,
    next_hop_type: str = "VirtualAppliance",
    next_hop: str | None = "192.168.1.10",
) -> Json:
    """A route as the NVA guide's PowerShell builds it (PascalCase members); by default to a
    virtual appliance at 192.168.1.10. ``next_hop=None`` sends no NextHopIpAddress."""
    properties: Json = {"AddressPrefix": prefix, "NextHopType": next_hop_type}
    if next_hop is not None:
        properties["NextHopIpAddress"] = next_hop
    return _resource(resource_id, properties)


def route_table(*routes: Json, resource_id: str | None = None, **properties: object) -> Json:
    """A routeTable with exactly ``routes``."""
    return _resource(resource_id, {"routes": list(routes), **properties})


# -- virtualNetworks --------------------------------------------------------------------


def provider_network(*subnets: Json, resource_id: str | None = None) -> Json:
    """An HNV provider logicalNetwork (``networkVirtualizationEnabled``) with exactly
    ``subnets``: the network virtual networks run over."""
    return logical_network(*subnets, resource_id=resource_id, networkVirtualizationEnabled=True)


def virtual_subnet(resource_id: str | None, prefix: str, **properties: object) -> Json:
    """A subnet of a virtualNetwork (``accessControlList=ref(...)``, ``routeTable=...``)."""
    return _resource(resource_id, {"addressPrefix": prefix, **properties})


def virtual_network(
    *subnets: Json,
    prefixes: tuple[str, ...] = ("24.30.0.0/16",),
    logical_network_path: str = "/logicalNetworks/HNVPA",
    resource_id: str | None = None,
    **properties: object,
) -> Json:
    """A virtualNetwork with the address space ``prefixes`` over the logical network at
    ``logical_network_path``, with exactly ``subnets``."""
    return _resource(
        resource_id,
        {
            "addressSpace": {"addressPrefixes": list(prefixes)},
            "logicalNetwork": ref(logical_network_path),
            "subnets": list(subnets),
            **properties,
        },
    )


# -- networkInterfaces (tenant NICs) ----------------------------------------------------


def ip_configuration(
    resource_id: str | None,
    subnet_path: str,
    address: str | None = None,
    **properties: object,
) -> Json:
    """An ipConfiguration in the subnet at ``subnet_path``; ``address`` is sent as
    ``privateIPAddress`` when given (so the method defaults to Static, else Dynamic)."""
    members: Json = {"subnet": ref(subnet_path)}
    if address is not None:
        members["privateIPAddress"] = address
    return _resource(resource_id, {**members, **properties})


def nic(*ip_configurations: Json, resource_id: str | None = None, **properties: object) -> Json:
    """A tenant networkInterface (a VM or container host NIC) with exactly
    ``ip_configurations``; ``privateMacAddress=...`` etc. as ``properties``. Without a MAC the
    controller draws one from a macPool."""
    return _resource(resource_id, {"ipConfigurations": list(ip_configurations), **properties})
