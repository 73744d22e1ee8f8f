#!/bin/sh
# The original system's mixed blog load, now driven by locust (run.py): a temporary ml_… user, seed posts, then list,
# detail and create at the given rates; what the run made is removed at the end.
#   sh ./mixed_load.sh --url http://127.0.0.1:30700 --duration 60s --rate-list 64 --rate-detail 12 --rate-create 4
# Also: --username/--password (an existing account instead of a temporary one), --max-p95-ms MS (a latency limit;
# off by default, as in the original system's script), --results-dir DIR. Exit 0 when no request failed and every rate was held.
here=$(cd "$(dirname "$0")" && pwd)
python="$here/../.venv/bin/python"
[ -x "$python" ] || python=python3
exec "$python" "$here/run.py" load --scenario mixed --max-p95-ms off --rate-tolerance-pct 5 \
    --rate-list 64 --rate-detail 12 --rate-create 4 "$@"
