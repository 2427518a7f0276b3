"""Index inbox.received_at, so purging old inbox rows does not scan the whole table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 05:30:00
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # CONCURRENTLY: an inbox that has grown large keeps taking writes while this builds.
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_inbox_received_at", "inbox", ["received_at"], postgresql_concurrently=True
            )
    else:
        op.create_index("ix_inbox_received_at", "inbox", ["received_at"])


def downgrade():
    op.drop_index("ix_inbox_received_at", table_name="inbox")
