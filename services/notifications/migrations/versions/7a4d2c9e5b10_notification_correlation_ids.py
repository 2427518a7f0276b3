"""Notifications remember the request id and traceparent of the event they came from.

The delivery worker logs under them, so one order's request can be followed into the
lines that send its mail and webhooks. Nullable: older rows, and events without them.

Revision ID: 7a4d2c9e5b10
Revises: 3c9e1f0a7b21
Create Date: 2026-12-01 10:52:35.402117
"""

import sqlalchemy as sa
from alembic import op

revision = "7a4d2c9e5b10"
down_revision = "3c9e1f0a7b21"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade():
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("traceparent")
        batch_op.drop_column("request_id")
