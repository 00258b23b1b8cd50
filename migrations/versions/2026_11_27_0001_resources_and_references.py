"""Resources, the references between them, and MAC allocations.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=128), nullable=False),
        sa.Column("path_key", sa.String(length=1024), nullable=False),
        sa.Column("resource_ref", sa.String(length=1024), nullable=False),
        sa.Column("resource_id", sa.String(length=256), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("root_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("secret", sa.JSON(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("resource_metadata", sa.JSON(), nullable=True),
        sa.Column("etag", sa.String(length=64), nullable=True),
        sa.Column("provisioning_state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["resources.instance_id"],
            name=op.f("fk_resources_parent_id_resources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["root_id"],
            ["resources.instance_id"],
            name=op.f("fk_resources_root_id_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_resources")),
        sa.UniqueConstraint("path_key", name=op.f("uq_resources_path_key")),
    )
    op.create_index(op.f("ix_resources_kind"), "resources", ["kind"])
    op.create_index(op.f("ix_resources_parent_id"), "resources", ["parent_id"])
    op.create_index(op.f("ix_resources_root_id"), "resources", ["root_id"])

    op.create_table(
        "resource_references",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("member", sa.String(length=256), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["resources.instance_id"],
            name=op.f("fk_resource_references_source_id_resources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["resources.instance_id"],
            name=op.f("fk_resource_references_target_id_resources"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_references")),
        sa.UniqueConstraint(
            "source_id", "member", "target_id", name=op.f("uq_resource_references_source_id")
        ),
    )
    op.create_index(op.f("ix_resource_references_target_id"), "resource_references", ["target_id"])

    op.create_table(
        "mac_allocations",
        sa.Column("mac", sa.BigInteger(), nullable=False),
        sa.Column("pool_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["resources.instance_id"],
            name=op.f("fk_mac_allocations_owner_id_resources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pool_id"],
            ["resources.instance_id"],
            name=op.f("fk_mac_allocations_pool_id_resources"),
        ),
        sa.PrimaryKeyConstraint("mac", name=op.f("pk_mac_allocations")),
    )
    op.create_index(op.f("ix_mac_allocations_owner_id"), "mac_allocations", ["owner_id"])
    op.create_index(op.f("ix_mac_allocations_pool_id"), "mac_allocations", ["pool_id"])


def downgrade() -> None:
    raise NotImplementedError("migrations roll forward only")
