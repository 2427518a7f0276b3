"""An index on webhook_attempts.created_at, for the purge of attempts past their retention.

Revision ID: c8f2e5a1d7b3
Revises: b6d1f3a8e2c4
Create Date: 2026-12-02 16:40:00
"""

from alembic import op

revision = "c8f2e5a1d7b3"
down_revision = "b6d1f3a8e2c4"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_attempts_created_at", ["created_at"], unique=False)


def downgrade():
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_attempts_created_at")
