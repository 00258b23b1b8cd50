"""The sibling key of the Static load balancer frontends that exist.

A load balancer's frontend is now written alone at its own URI, as its rules are, so whether
another frontend of the load balancer asks for the same Static address is asked of the
``sibling_key`` column: the subnet's resourceRef, lower-cased, and the address, as
``controller.resources.load_balancer_checks.static_frontend`` declares the key. Frontends
written whole since the key was declared hold it already; Dynamic and public IP frontends
hold none.

Rows that replicas of a version before 0009 write while the upgrade rolls on lack the key;
``sdnc db finish-upgrade`` fills it in. Until then a clash with such a row is still refused,
by the allocation table (409 IpAddressInUse, where the key would have given 400
InvalidInput).

Revision ID: 0011_frontend_keys
Revises: 0010_ip_configuration_keys
Create Date: 2026-12-08
"""

from __future__ import annotations

import hashlib
import ipaddress
import json

import sqlalchemy as sa
from alembic import op

revision = "0011_frontend_keys"
down_revision = "0010_ip_configuration_keys"
branch_labels = None
depends_on = None

KIND = "loadBalancers/frontendIPConfigurations"
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
        sa.select(resources.c.instance_id, resources.c.properties).where(
            resources.c.kind == KIND, resources.c.sibling_key.is_(None)
        )
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
    # A frontend given an address and no method is Static (the model's default).
    method = properties.get("privateIPAllocationMethod") or ("Static" if address else None)
    if method != "Static" or not isinstance(address, str) or not isinstance(subnet, dict):
        return None
    values = [str(subnet["resourceRef"]).lower(), str(ipaddress.ip_address(address))]
    # As orjson writes it: compact, and not escaping what is not ASCII.
    text = json.dumps(values, separators=(",", ":"), ensure_ascii=False)
    if len(text) <= KEY_TEXT_MAX:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def downgrade() -> None:
    raise NotImplementedError("migrations roll forward only")
