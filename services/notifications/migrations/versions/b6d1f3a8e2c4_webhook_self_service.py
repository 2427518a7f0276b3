"""Webhook self-service: the attempt log, secret rotation, auto-disable, test pings.

`webhook_attempts` logs every attempt per endpoint; endpoints keep the secret before
the current one for a grace period, and when they started failing and were disabled;
a delivery remembers its claim (`claimed_until`), and a test ping's delivery belongs to
no notification.

Revision ID: b6d1f3a8e2c4
Revises: 4e8a1c7d2f90
Create Date: 2026-12-02 15:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "b6d1f3a8e2c4"
down_revision = "4e8a1c7d2f90"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column("notification_id", existing_type=sa.Uuid(), nullable=True)

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('succeeded', 'failed')", name=op.f("ck_webhook_attempts_outcome_known")
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_attempts_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_attempts_endpoint_created",
            ["endpoint_id", "created_at", "id"],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_attempts_endpoint_created")
    op.drop_table("webhook_attempts")

    # Test pings have no notification: they cannot stay once the column is required again.
    op.execute("DELETE FROM deliveries WHERE notification_id IS NULL")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("notification_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column("claimed_until")

    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("failing_since")
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_secret")
