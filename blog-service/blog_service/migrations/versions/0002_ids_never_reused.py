"""post ids never reused"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    # SQLite reuses the highest rowid after a delete unless the table is AUTOINCREMENT, which needs a new table;
    # PostgreSQL's sequence never goes back.
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("posts", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass
