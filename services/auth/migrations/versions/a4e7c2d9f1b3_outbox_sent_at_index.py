"""Index outbox.sent_at, so purging sent events does not scan the whole table.

Revision ID: a4e7c2d9f1b3
Revises: 6b1af383ba5c
Create Date: 2026-11-25 10:00:00
"""

from alembic import op

revision = "a4e7c2d9f1b3"
down_revision = "6b1af383ba5c"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # CONCURRENTLY: an outbox that has grown large keeps taking writes while this builds.
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_outbox_sent_at", "outbox", ["sent_at"], postgresql_concurrently=True
            )
    else:
        op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"])


def downgrade():
    op.drop_index("ix_outbox_sent_at", table_name="outbox")
