"""Agent status remembers when its connection was accepted, so only that connection or a newer
one overwrites it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_status") as batch:
        batch.add_column(sa.Column("connected_since", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE agent_status SET connected_since = last_seen")
    with op.batch_alter_table("agent_status") as batch:
        batch.alter_column("connected_since", nullable=False)


def downgrade() -> None:
    raise NotImplementedError("migrations roll forward only")
