"""The sibling key of the Static ipConfigurations that exist.

A NIC's ipConfiguration is now written alone at its own URI (a container host's NIC holds
1,000), so whether another ipConfiguration of the NIC asks for the same Static address is
asked of the ``sibling_key`` column: its subnet's resourceRef, lower-cased, and the address,
as ``controller.resources.network_interfaces`` declares the key. Dynamic ones hold none.

Rows that replicas of the earlier version write while the upgrade rolls on lack the key;
``sdnc db finish-upgrade``, run when the last of them has stopped, fills it in. Until then a
clash with such a row is still refused, by the allocation table (409 IpAddressInUse, where
the key would have given 400 InvalidInput).

Revision ID: 0010_ip_configuration_keys
Revises: 0009_children_and_sibling_keys
Create Date: 2026-12-08
"""

from __future__ import annotations

import hashlib
import ipaddress
import json

import sqlalchemy as sa
from alembic import op

revision = "0010_ip_configuration_keys"
down_revision = "0009_children_and_sibling_keys"
branch_labels = None
depends_on = None

KIND = "networkInterfaces/ipConfigurations"
BATCH = 1000
# As controller.service.validation.key_text writes it: a longer key is stored as its digest.
KEY_TEXT_MAX = 256


def upgrade() -> None:
    resources = sa.table(
        "resources",
        sa.column("instance_id", sa.Uuid()),
        sa.column("kind", sa.String()),
        sa.column("properties", sa.JSON()),
        sa.column("sibling_key", sa.String()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(resources.c.instance_id, resources.c.properties).where(resources.c.kind == KIND)
    ).all()
    values = [
        {"id": instance_id, "key": key}
        for instance_id, properties in rows
        if (key := _key(properties)) is not None
    ]
    statement = (
        sa.update(resources)
        .where(resources.c.instance_id == sa.bindparam("id"))
        .values(sibling_key=sa.bindparam("key"))
    )
    for start in range(0, len(values), BATCH):
        connection.execute(statement, values[start : start + BATCH])


def _key(properties: dict[str, object]) -> str | None:
    address = properties.get("privateIPAddress")
    subnet = properties.get("subnet")
    static = properties.get("privateIPAllocationMethod") == "Static"
    if not static or not isinstance(address, str) or not isinstance(subnet, dict):
        return None
    values = [str(subnet["resourceRef"]).lower(), str(ipaddress.ip_address(address))]
    # As orjson writes it: compact, and not escaping what is not ASCII.
    text = json.dumps(values, separators=(",", ":"), ensure_ascii=False)
    if len(text) <= KEY_TEXT_MAX:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def downgrade() -> None:
    raise NotImplementedError("migrations roll forward only")
