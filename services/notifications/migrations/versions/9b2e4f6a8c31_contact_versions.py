"""contacts.active_version and profile_version: user events apply in version order.

Revision ID: 9b2e4f6a8c31
Revises: d2b7e4a91c36
Create Date: 2026-12-02 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "9b2e4f6a8c31"
down_revision = "d2b7e4a91c36"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(
            sa.Column("active_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("profile_version", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("profile_version")
        batch.drop_column("active_version")
