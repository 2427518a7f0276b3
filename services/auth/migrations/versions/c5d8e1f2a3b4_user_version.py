"""users.version: a counter of changes that every user event carries.

Revision ID: c5d8e1f2a3b4
Revises: c5d1e8f27a90
Create Date: 2026-12-02 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "c5d8e1f2a3b4"
down_revision = "c5d1e8f27a90"
branch_labels = None
depends_on = None


def upgrade():
    # A constant server default: PostgreSQL adds the column without rewriting the table.
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("version")
