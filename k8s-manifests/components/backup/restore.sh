#!/bin/sh
# Restore one dump written by backup.sh into $PGDATABASE: every object in the dump is dropped first (if it
# exists) and recreated, in one transaction, so a failed restore leaves the database as it was.
# Usage: restore.sh [DUMP]   (default: the newest dump in $BACKUP_DIR)
set -eu
: "${PGDATABASE:?}"
dump=${1:-$(ls -1 "${BACKUP_DIR:?}"/"$PGDATABASE"-*.dump | sort -r | head -n 1)}
pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error --dbname="$PGDATABASE" "$dump"
echo "restore: $PGDATABASE restored from $dump"
