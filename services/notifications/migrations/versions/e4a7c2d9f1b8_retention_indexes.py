"""Indexes for the retention purges: finished deliveries, old notifications, attempts by delivery.

Revision ID: e4a7c2d9f1b8
Revises: c8f2e5a1d7b3
Create Date: 2026-12-02 19:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "e4a7c2d9f1b8"
down_revision = "c8f2e5a1d7b3"
branch_labels = None
depends_on = None

# The same literal as services.notifications.retention.FINISHED.
FINISHED = "status <> 'pending'"


def upgrade():
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_finished_updated",
            ["updated_at"],
            unique=False,
            postgresql_where=sa.text(FINISHED),
            sqlite_where=sa.text(FINISHED),
        )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_created_at", ["created_at"], unique=False)
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_attempts_delivery_id", ["delivery_id"], unique=False)


def downgrade():
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_attempts_delivery_id")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_created_at")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_finished_updated")
