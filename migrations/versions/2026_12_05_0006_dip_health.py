"""DIP health: the latest state of each DIP under each probe, as its host reported it.

Revision ID: 0006_slb_sb_dip_health
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_slb_sb_dip_health"
down_revision = "0005"
branch_labels = None
depends_on = None


def _reference(column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        ["resources.instance_id"],
        name=op.f(f"fk_dip_health_{column}_resources"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "dip_health",
        sa.Column("probe_id", sa.Uuid(), nullable=False),
        sa.Column("dip_id", sa.Uuid(), nullable=False),
        sa.Column("server_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        _reference("probe_id"),
        _reference("dip_id"),
        _reference("server_id"),
        sa.PrimaryKeyConstraint("probe_id", "dip_id", name=op.f("pk_dip_health")),
    )
    op.create_index(op.f("ix_dip_health_server_id"), "dip_health", ["server_id"], unique=False)


def downgrade() -> None:
    raise NotImplementedError("migrations roll forward only")
