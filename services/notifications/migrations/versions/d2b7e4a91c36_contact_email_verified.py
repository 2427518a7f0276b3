"""Contacts know whether their address is verified; only verified ones receive mail.

Contacts that exist before this revision were registered when no address was verified;
they are marked verified here, so that they keep receiving their mail.

Revision ID: d2b7e4a91c36
Revises: 7a4d2c9e5b10
Create Date: 2026-12-02 04:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "d2b7e4a91c36"
down_revision = "7a4d2c9e5b10"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.add_column(
            sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.execute("UPDATE contacts SET email_verified = true")


def downgrade():
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.drop_column("email_verified")
