#!/bin/sh
# mixed_load.sh plus updates and deletes, and a clean-up: --rate-update R --rate-delete R (default 2 and 2).
#   sh ./mixed_load_plus.sh --url URL --duration 60s --rate-list 64 --rate-detail 12 --rate-create 4 \
#       --rate-update 2 --rate-delete 2 --cleanup
# --cleanup after a run: delete what the run created by id, then whatever still carries its title prefix.
# --cleanup alone (no rate flag): only clean, i.e. delete every post titled ml_… that --username/--password may
# delete (an admin: anyone's).
here=$(cd "$(dirname "$0")" && pwd)
python="$here/../.venv/bin/python"
[ -x "$python" ] || python=python3
case " $* " in
*" --rate-"* | *" --duration"*) ;;
*" --cleanup "*)
    for arg do # the same arguments without --cleanup
        shift
        [ "$arg" = "--cleanup" ] || set -- "$@" "$arg"
    done
    exec "$python" "$here/run.py" sweep "$@" ;;
esac
exec "$python" "$here/run.py" load --scenario crud --max-p95-ms off --rate-tolerance-pct 5 \
    --rate-list 64 --rate-detail 12 --rate-create 4 --rate-update 2 --rate-delete 2 "$@"
