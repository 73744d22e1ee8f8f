#!/bin/sh
# What the official redis image's entrypoint does: options alone (or a .conf file) mean redis-server; it runs as
# the redis user; protected mode is off (the official image is built so), so that other containers reach it.
set -eu
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
    shift
    if [ $# -gt 0 ] && [ "${1%.conf}" != "$1" ]; then
        config="$1"
        shift
        set -- redis-server "$config" --protected-mode no "$@"
    else
        set -- redis-server --protected-mode no "$@"
    fi
    if [ "$(id -u)" = 0 ]; then
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
