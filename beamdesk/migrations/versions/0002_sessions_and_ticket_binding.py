"""sessions and sign-in: session generation per user, hub tickets bound to a browser

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (no table rebuild on SQLite): existing accounts start at
    # generation 0, which no existing session cookie carries, so everybody signs in
    # once more after the upgrade.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("hub_tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("browser_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hub_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hub_tickets", schema=None) as batch_op:
        batch_op.drop_column("hub_hash")
        batch_op.drop_column("browser_hash")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_generation")
