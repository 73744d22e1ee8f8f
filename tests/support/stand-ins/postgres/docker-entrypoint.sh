#!/bin/sh
# What the official postgres image's entrypoint does that the suite relies on: as root, own PGDATA and drop to the
# postgres user; on an empty data directory, initdb with POSTGRES_USER (default postgres) and POSTGRES_PASSWORD
# (required), password auth for every host, and POSTGRES_DB (default: the user's name) created.
set -eu
if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi
if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA"
    chown -R postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
    user="${POSTGRES_USER:-postgres}"
    database="${POSTGRES_DB:-$user}"
    password_file="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
    initdb --username="$user" --pwfile="$password_file" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
    rm -f "$password_file"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        # A server on a private socket only, so that pg_isready (the health check) does not see it as the real one.
        socket_dir="$(mktemp -d)"
        pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$socket_dir" -w start >/dev/null
        psql -v ON_ERROR_STOP=1 -h "$socket_dir" --username="$user" --dbname=postgres --quiet \
            -c "CREATE DATABASE \"$database\""
        pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
        rmdir "$socket_dir"
    fi
    echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"
