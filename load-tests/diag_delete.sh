#!/bin/sh
# One post through its whole life: create (201), GET (200), DELETE (204), GET (404).
#   sh ./diag_delete.sh --url http://127.0.0.1:30700 [--username U --password P]
# Without an account a temporary ml_… user is made and removed. Exit code: 0 passed, 10 set-up (register/login),
# 11 create, 12 read, 13 delete, 14 read after delete (the post was still there).
here=$(cd "$(dirname "$0")" && pwd)
python="$here/../.venv/bin/python"
[ -x "$python" ] || python=python3
exec "$python" "$here/run.py" diag "$@"
