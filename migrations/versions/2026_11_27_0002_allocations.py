"""Allocations: VSIDs of virtual subnets, IP addresses of ipConfigurations, static MACs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ip_allocations",
        sa.Column("subnet_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["resources.instance_id"],
            name=op.f("fk_ip_allocations_owner_id_resources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subnet_id"],
            ["resources.instance_id"],
            name=op.f("fk_ip_allocations_subnet_id_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subnet_id", "address", name=op.f("pk_ip_allocations")),
        sa.UniqueConstraint("owner_id", name=op.f("uq_ip_allocations_owner_id")),
    )
    op.create_table(
        "vsid_allocations",
        sa.Column("vsid", sa.BigInteger(), nullable=False),
        sa.Column("subnet_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subnet_id"],
            ["resources.instance_id"],
            name=op.f("fk_vsid_allocations_subnet_id_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("vsid", name=op.f("pk_vsid_allocations")),
        sa.UniqueConstraint("subnet_id", name=op.f("uq_vsid_allocations_subnet_id")),
    )
    # Static MACs outside every pool have no pool; a NIC holds one MAC.
    with op.batch_alter_table("mac_allocations") as batch:
        batch.alter_column("pool_id", existing_type=sa.Uuid(), nullable=True)
        batch.drop_index(op.f("ix_mac_allocations_owner_id"))
        batch.create_unique_constraint(op.f("uq_mac_allocations_owner_id"), ["owner_id"])
        batch.drop_constraint(op.f("fk_mac_allocations_pool_id_resources"), type_="foreignkey")
        batch.create_foreign_key(
            op.f("fk_mac_allocations_pool_id_resources"),
            "resources",
            ["pool_id"],
            ["instance_id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    raise NotImplementedError("migrations roll forward only")
