"""Allocation reservations: values set aside for writes that have yet to commit.

Revision ID: 0008_allocation_reservations
Revises: 0007_security
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_allocation_reservations"
down_revision = "0007_security"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allocation_reservations",
        sa.Column("numbering", sa.String(length=32), nullable=False),
        sa.Column("scope_id", sa.Uuid(), nullable=False),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("token", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "numbering", "scope_id", "value", name=op.f("pk_allocation_reservations")
        ),
    )
    op.create_index(op.f("ix_allocation_reservations_token"), "allocation_reservations", ["token"])
    op.create_index(
        op.f("ix_allocation_reservations_expires_at"), "allocation_reservations", ["expires_at"]
    )


def downgrade() -> None:
    raise NotImplementedError("migrations roll forward only")
