"""ids never reused, names unique whatever their case, a token version per user"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

log = logging.getLogger("user_service.migrations")


def _case_clashes(connection) -> list[list[str]]:
    """Groups of existing names that differ only in case (they cannot all keep their names)."""
    rows = connection.execute(
        sa.text(
            "SELECT id, username FROM users WHERE lower(username) IN "
            "(SELECT lower(username) FROM users GROUP BY lower(username) HAVING count(*) > 1) ORDER BY id"
        )
    ).all()
    groups: dict[str, list[str]] = {}
    for user_id, username in rows:
        groups.setdefault(username.lower(), []).append(f"{username} (id {user_id})")
    return list(groups.values())


def upgrade() -> None:
    connection = op.get_bind()
    clashes = _case_clashes(connection)
    if clashes:
        listed = "; ".join(", ".join(group) for group in clashes)
        log.error("usernames that differ only in case: %s", listed)
        raise RuntimeError(
            f"user-service cannot make usernames unique regardless of case: rename all but one of each group "
            f"and start again ({listed})"
        )
    sqlite = connection.dialect.name == "sqlite"
    # SQLite reuses the highest rowid after a delete unless the table is AUTOINCREMENT, which needs a new table.
    with op.batch_alter_table(
        "users", recreate="always" if sqlite else "auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.add_column(sa.Column("token_version", sa.Integer, nullable=False, server_default="0"))
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
