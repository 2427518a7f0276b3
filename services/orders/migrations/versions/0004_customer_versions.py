"""customers.active_version and profile_version: user events apply in version order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("customers") as batch:
        batch.add_column(
            sa.Column("active_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("profile_version", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("profile_version")
        batch.drop_column("active_version")
