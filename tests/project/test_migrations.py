"""Migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, insert, pool, select, update

from controller.service.validation import key_text
from controller.store import migrate
from controller.store.database import sync_url
from controller.store.tables import Base, Resource, RevisionCounter
from tests.conftest import BACKEND, create_database


def _differences(url: str) -> list[object]:
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_migrated_database_matches_the_models(migrated_url: str) -> None:
    assert _differences(migrated_url) == []


def test_database_is_at_the_newest_revision(migrated_url: str) -> None:
    assert migrate.current_revision(migrated_url) == migrate.head_revision()


def test_upgrade_is_idempotent(migrated_url: str) -> None:
    migrate.upgrade(migrated_url)
    assert migrate.current_revision(migrated_url) == migrate.head_revision()


def test_migrations_roll_forward_only() -> None:
    for script in migrate.SCRIPT_LOCATION.joinpath("versions").glob("*.py"):
        if script.name == "__init__.py":
            continue
        text = script.read_text()
        assert 'raise NotImplementedError("migrations roll forward only")' in text, script.name


def store_row(
    connection: Connection,
    instance_id: uuid.UUID,
    kind: str,
    ref: str,
    properties: dict[str, Any],
    *,
    root_id: uuid.UUID,
    parent_id: uuid.UUID | None = None,
) -> None:
    """A resource row as an earlier schema revision holds it (its later columns unset)."""
    now = datetime.now(UTC)
    values = {
        "instance_id": instance_id,
        "kind": kind,
        "path_key": ref.lower(),
        "resource_ref": ref,
        "resource_id": ref.rsplit("/", 1)[1],
        "parent_id": parent_id,
        "root_id": root_id,
        "properties": properties,
        "created_at": now,
        "updated_at": now,
        "provisioning_state": "S",
    }
    connection.execute(insert(Resource.__table__).values(**values))


@pytest.fixture
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no migration has touched."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with create_database(request.getfixturevalue("postgres_server")) as url:
        yield url


def test_a_new_database_allows_patches(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    engine = create_engine(sync_url(empty_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            assert connection.execute(select(RevisionCounter.patches)).scalar_one() is True
    finally:
        engine.dispose()


def test_sibling_keys_are_filled_in_for_the_rules_that_exist(empty_url: str) -> None:
    """0009 gives the aclRules stored before it their sibling key, as the service writes it
    (a rule written alone is checked against it); replicas may have been following the
    change log, so patches wait for ``sdnc db finish-upgrade``."""
    command.upgrade(migrate.alembic_config(empty_url), "0008_allocation_reservations")
    engine = create_engine(sync_url(empty_url), poolclass=pool.NullPool)
    acl, rules = uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]
    resources = Resource.__table__
    try:
        with engine.begin() as connection:
            connection.execute(update(RevisionCounter).values(revision=7))
            store_row(connection, acl, "accessControlLists", "/acl", {}, root_id=acl)
            for index, (rule, direction) in enumerate(
                zip(rules, ["Inbound", "Outbound"], strict=True)
            ):
                properties = {"type": direction, "priority": 100 + index, "action": "Allow"}
                kind, ref = "accessControlLists/aclRules", f"/acl/aclRules/r{index}"
                store_row(connection, rule, kind, ref, properties, root_id=acl, parent_id=acl)
        migrate.upgrade(empty_url)
        with engine.connect() as connection:
            patches = connection.execute(select(RevisionCounter.patches)).scalar_one()
            keys = dict(
                connection.execute(select(resources.c.instance_id, resources.c.sibling_key)).all()
            )
    finally:
        engine.dispose()
    assert keys == {acl: None, rules[0]: '["Inbound",100]', rules[1]: '["Outbound",101]'}
    assert patches is False


def test_static_ip_configurations_get_their_sibling_key(empty_url: str) -> None:
    """0010 gives the Static ipConfigurations stored before it the key an ipConfiguration
    written alone is checked against, as the service writes it (a long one as its digest);
    Dynamic ones hold none."""
    command.upgrade(migrate.alembic_config(empty_url), "0009_children_and_sibling_keys")
    engine = create_engine(sync_url(empty_url), poolclass=pool.NullPool)
    nic = uuid.uuid4()
    long_subnet = f"/virtualNetworks/V/subnets/{'S' * 250}"
    configs = {
        uuid.uuid4(): ("/virtualNetworks/V/subnets/Web", "Static", "10.0.0.5"),
        uuid.uuid4(): (long_subnet, "Static", "fd00:0:0:0:0:0:0:FF"),
        uuid.uuid4(): ("/virtualNetworks/V/subnets/Web", "Dynamic", "10.0.0.6"),
    }
    resources = Resource.__table__
    try:
        with engine.begin() as connection:
            store_row(connection, nic, "networkInterfaces", "/networkInterfaces/n", {}, root_id=nic)
            for index, (config, (subnet, method, address)) in enumerate(configs.items()):
                properties = {
                    "subnet": {"resourceRef": subnet},
                    "privateIPAllocationMethod": method,
                    "privateIPAddress": address,
                }
                kind = "networkInterfaces/ipConfigurations"
                ref = f"/networkInterfaces/n/ipConfigurations/c{index}"
                store_row(connection, config, kind, ref, properties, root_id=nic, parent_id=nic)
        migrate.upgrade(empty_url)
        with engine.connect() as connection:
            keys = dict(
                connection.execute(select(resources.c.instance_id, resources.c.sibling_key)).all()
            )
    finally:
        engine.dispose()
    static, long, dynamic = configs
    assert keys[static] == '["/virtualnetworks/v/subnets/web","10.0.0.5"]'
    assert keys[long] == key_text((long_subnet.lower(), "fd00::ff"))
    assert keys[long].startswith("sha256:")
    assert keys[dynamic] is None
    assert keys[nic] is None


def test_static_frontends_get_their_sibling_key(empty_url: str) -> None:
    """0011 gives the Static frontends stored before the key was declared the key a frontend
    written alone is checked against, as the service writes it; Dynamic and public IP
    frontends hold none."""
    command.upgrade(migrate.alembic_config(empty_url), "0010_ip_configuration_keys")
    engine = create_engine(sync_url(empty_url), poolclass=pool.NullPool)
    lb = uuid.uuid4()
    vip = {"resourceRef": "/logicalNetworks/VIP/subnets/VIP_0"}
    frontends: dict[uuid.UUID, dict[str, Any]] = {
        uuid.uuid4(): {"subnet": vip, "privateIPAllocationMethod": "Static",
                       "privateIPAddress": "41.40.40.9"},
        uuid.uuid4(): {"subnet": vip, "privateIPAddress": "41.40.40.10"},  # Static by default
        uuid.uuid4(): {"subnet": vip, "privateIPAllocationMethod": "Dynamic",
                       "privateIPAddress": "41.40.40.11"},
        uuid.uuid4(): {"publicIPAddress": {"resourceRef": "/publicIPAddresses/P"}},
    }  # fmt: skip
    resources = Resource.__table__
    try:
        with engine.begin() as connection:
            store_row(connection, lb, "loadBalancers", "/loadBalancers/lb", {}, root_id=lb)
            for index, (frontend, properties) in enumerate(frontends.items()):
                kind = "loadBalancers/frontendIPConfigurations"
                ref = f"/loadBalancers/lb/frontendIPConfigurations/f{index}"
                store_row(connection, frontend, kind, ref, properties, root_id=lb, parent_id=lb)
        migrate.upgrade(empty_url)
        with engine.connect() as connection:
            keys = dict(
                connection.execute(select(resources.c.instance_id, resources.c.sibling_key)).all()
            )
    finally:
        engine.dispose()
    static, defaulted, dynamic, public = frontends
    assert keys[static] == '["/logicalnetworks/vip/subnets/vip_0","41.40.40.9"]'
    assert keys[defaulted] == key_text(("/logicalnetworks/vip/subnets/vip_0", "41.40.40.10"))
    assert keys[dynamic] is None
    assert keys[public] is None
    assert keys[lb] is None
