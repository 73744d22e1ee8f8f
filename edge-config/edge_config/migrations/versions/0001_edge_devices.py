"""edge devices and their config history"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "edge_devices",
        sa.Column("device_id", sa.String(63), primary_key=True),
        sa.Column("device_type", sa.String(63), nullable=False),
        sa.Column("ip_address", sa.String(45), nullable=True),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("reload_port", sa.Integer, nullable=False),
        sa.Column("enabled_metrics", sa.JSON, nullable=True),
        sa.Column("extra", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reload_status", sa.String(16), nullable=True),
        sa.Column("reload_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reload_attempts", sa.Integer, nullable=True),
        sa.Column("reload_error", sa.String(500), nullable=True),
    )
    op.create_table(
        "edge_config_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("device_id", sa.String(63), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("device_id", "version"),
    )
