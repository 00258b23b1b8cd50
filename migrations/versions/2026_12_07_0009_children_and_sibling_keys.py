"""Children in order by parent and kind, each child's sibling key, and change-log patches.

A child written alone (an aclRule PUT at its own URI) asks the database where its last
sibling stands and whether a sibling holds its sibling key (an aclRule's direction and
priority): one index lookup each. The index of children by parent becomes one by parent,
kind and position (the foreign key's cascade still finds a parent's children by it), and
``sibling_key`` holds the key's values as JSON text, filled in here for the rows that exist.

A write may now be recorded as what it changed (a patch), which replicas of earlier versions
would misread as the whole aggregate: ``revision_counter.patches`` allows it on a database
no replica has written to yet (a new deployment), and ``sdnc db finish-upgrade`` on one that
older replicas may still be following.

Revision ID: 0009_children_and_sibling_keys
Revises: 0008_allocation_reservations
Create Date: 2026-12-07
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0009_children_and_sibling_keys"
down_revision = "0008_allocation_reservations"
branch_labels = None
depends_on = None

# The kinds with a sibling key when this migration was written, and its members (as
# ``Kind.sibling_key`` declares them); later kinds fill the column as they are written.
SIBLING_KEYS = {"accessControlLists/aclRules": ("type", "priority")}
BATCH = 1000


def upgrade() -> None:
    op.add_column("resources", sa.Column("sibling_key", sa.String(length=256), nullable=True))
    op.drop_index("ix_resources_parent_id", table_name="resources")
    op.create_index("ix_resources_children", "resources", ["parent_id", "kind", "position"])
    op.create_index("ix_resources_sibling_key", "resources", ["parent_id", "sibling_key"])
    _fill_sibling_keys()
    op.add_column(
        "revision_counter",
        sa.Column("patches", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    # Every replica writes the singletons when it starts: no revision yet, no replica yet.
    op.execute("UPDATE revision_counter SET patches = TRUE WHERE revision = 0")


def _fill_sibling_keys() -> None:
    resources = sa.table(
        "resources",
        sa.column("instance_id", sa.Uuid()),
        sa.column("kind", sa.String()),
        sa.column("properties", sa.JSON()),
        sa.column("sibling_key", sa.String()),
    )
    connection = op.get_bind()
    for kind, members in SIBLING_KEYS.items():
        rows = connection.execute(
            sa.select(resources.c.instance_id, resources.c.properties).where(
                resources.c.kind == kind
            )
        ).all()
        values = [
            {
                "id": instance_id,
                # As orjson writes it (controller.service.validation.sibling_key_text).
                "key": json.dumps([properties[m] for m in members], separators=(",", ":")),
            }
            for instance_id, properties in rows
        ]
        statement = (
            sa.update(resources)
            .where(resources.c.instance_id == sa.bindparam("id"))
            .values(sibling_key=sa.bindparam("key"))
        )
        for start in range(0, len(values), BATCH):
            connection.execute(statement, values[start : start + BATCH])


def downgrade() -> None:
    raise NotImplementedError("migrations roll forward only")
