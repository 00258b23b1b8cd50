"""``host/<server instanceId>``: the host's own provider address and encapsulation."""

from __future__ import annotations

from controller import protocol
from controller.policy.model import Model
from controller.policy.objects.base import Body, Computed, Keys, ObjectKind
from controller.policy.topology import Fabric, ProviderAddress, Server

SCHEMA_VERSION = 1


def _build(model: Model, server_key: str) -> Computed | None:
    server = model.servers.get(server_key)
    if server is None:
        return None
    body: Body = {
        "providerAddress": model.provider.get(server_key),
        "encapsulation": model.fabric.encapsulation if model.fabric else "Vxlan",
        "schemaVersion": SCHEMA_VERSION,
    }
    return Computed(protocol.object_key(protocol.HOST, server.id), body, frozenset({server.id}))


def _itself(_: Model, entity: Server | ProviderAddress) -> Keys:
    return (entity.key,)


def _every_server(model: Model, _: Fabric) -> Keys:
    return model.servers


HOST = ObjectKind(
    protocol.HOST,
    _build,
    keys=lambda model: model.servers,
    shaped_by={Server: _itself, ProviderAddress: _itself, Fabric: _every_server},
)
