"""Notifications name what they are about: a subject type and its full id.

So a client can go from a notification to the order it is about (the API renders the
path). Nullable: notifications made before this kept only the text.

Revision ID: 5e8c1a3d9f47
Revises: 9b2e4f6a8c31
Create Date: 2026-12-02 05:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "5e8c1a3d9f47"
down_revision = "9b2e4f6a8c31"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("subject_id", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("subject_id")
        batch_op.drop_column("subject_type")
