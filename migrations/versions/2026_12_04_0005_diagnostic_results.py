"""Diagnostics results (the software load balancer state dumps), kept until they expire.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "diagnostic_results",
        sa.Column("operation_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("operation_id", name=op.f("pk_diagnostic_results")),
    )
    op.create_index(
        op.f("ix_diagnostic_results_expires_at"),
        "diagnostic_results",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    raise NotImplementedError("migrations roll forward only")
