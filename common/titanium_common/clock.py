"""Time as the suite stores and shows it: aware UTC datetimes, ISO 8601 ending in `Z`."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc_iso(moment: datetime | None = None) -> str:
    """`moment` (now if None) in UTC with milliseconds and `Z`.

    A naive datetime is taken as UTC: SQLite hands stored timestamps back without their zone, and a browser would
    otherwise read them as local time.
    """
    moment = moment or utcnow()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
