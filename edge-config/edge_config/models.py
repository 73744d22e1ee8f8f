"""Device configs and their history (the schema is created by the Alembic migrations beside this module)."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from titanium_common.clock import utc_iso, utcnow


def iso(moment: datetime | None) -> str | None:
    return utc_iso(moment) if moment is not None else None


class Base(DeclarativeBase):
    pass


class Device(Base):
    """The current config of one device, plus the outcome of its last reload."""

    __tablename__ = "edge_devices"

    device_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    device_type: Mapped[str] = mapped_column(String(63))
    ip_address: Mapped[str | None] = mapped_column(String(45), nullable=True)
    port: Mapped[int] = mapped_column(Integer)
    reload_port: Mapped[int] = mapped_column(Integer)
    enabled_metrics: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reload_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reload_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reload_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reload_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class ConfigVersion(Base):
    """Every change of a device's config, kept: nothing is lost by an overwrite or a delete."""

    __tablename__ = "edge_config_versions"
    __table_args__ = (UniqueConstraint("device_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
