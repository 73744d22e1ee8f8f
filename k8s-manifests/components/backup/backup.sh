#!/bin/sh
# One dump of $PGDATABASE into $BACKUP_DIR (custom format, restorable with restore.sh), then the oldest dumps
# beyond the newest $BACKUP_KEEP are removed. A dump is written under a temporary name and renamed when
# complete (a failed run leaves nothing behind).
set -eu
: "${BACKUP_DIR:?}" "${BACKUP_KEEP:?}" "${PGDATABASE:?}"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
target="$BACKUP_DIR/$PGDATABASE-$stamp.dump"
trap 'rm -f -- "$target.partial"' EXIT
pg_dump --format=custom --no-owner --file="$target.partial"
mv "$target.partial" "$target"
echo "backup: wrote $target ($(wc -c < "$target") bytes)"
ls -1 "$BACKUP_DIR"/"$PGDATABASE"-*.dump | sort -r | tail -n +"$((BACKUP_KEEP + 1))" | while read -r old; do
    rm -f -- "$old"
    echo "backup: removed $old"
done
