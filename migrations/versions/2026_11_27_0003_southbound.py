"""Southbound: the change log and its revision counter, agent status, controller secrets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_log",
        sa.Column("revision", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_id", sa.Uuid(), nullable=False),
        sa.Column("root_kind", sa.String(length=128), nullable=False),
        sa.Column("document", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("revision", name=op.f("pk_change_log")),
    )
    op.create_table(
        "controller_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_controller_secrets")),
    )
    counter = op.create_table(
        "revision_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revision_counter")),
    )
    op.bulk_insert(counter, [{"id": 1, "revision": 0}])
    op.create_table(
        "agent_status",
        sa.Column("server_id", sa.Uuid(), nullable=False),
        sa.Column("replica", sa.String(length=64), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("applied_revision", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=True),
        sa.Column("provider_address", sa.String(length=64), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["resources.instance_id"],
            name=op.f("fk_agent_status_server_id_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("server_id", name=op.f("pk_agent_status")),
    )
    with op.batch_alter_table("resources") as batch:
        batch.add_column(sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    raise NotImplementedError("migrations roll forward only")
