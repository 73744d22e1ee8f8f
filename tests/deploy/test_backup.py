"""The backup component's CronJob command, run here as the pod would run it (its ConfigMap's scripts mounted, its
environment) against the machine's PostgreSQL: it writes a dump and keeps the newest BACKUP_KEEP; the documented
restore brings a wiped database back with every row and its id sequence."""

import os
import shutil
import subprocess
import uuid
from urllib.parse import urlsplit

import pytest

from tests.support.databases import POSTGRES_DSN
from tests.support.deploy import MANIFESTS, REPO_ROOT, container_env, of_kind, pod_spec, render

SERVER = urlsplit(POSTGRES_DSN)
CONNECTION = ("-h", SERVER.hostname, "-p", str(SERVER.port), "-U", SERVER.username)
ROWS = 500

pytestmark = pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump missing: run `make deploy-tools`")


def psql(database: str, sql: str) -> str:
    done = subprocess.run(
        ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", *CONNECTION, "-d", database, "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def database():
    """A database of its own (the scripts dump and restore a whole database), dropped afterwards."""
    name = f"titanium_backup_{uuid.uuid4().hex[:10]}"
    admin = SERVER.path.lstrip("/")
    psql(admin, f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def job(tmp_path):
    """The CronJob's container as data, and its scripts ConfigMap mounted where the pod mounts it."""
    docs = render(MANIFESTS / "tests" / "backup")
    (cron,) = of_kind(docs, "CronJob").values()
    spec = pod_spec(cron)
    (container,) = spec["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (scripts_volume,) = [v for v in spec["volumes"] if "configMap" in v]
    scripts = of_kind(docs, "ConfigMap")[scripts_volume["configMap"]["name"]]["data"]
    mounted = tmp_path / "scripts"
    mounted.mkdir()
    for name, text in scripts.items():
        (mounted / name).write_text(text)
    backups = tmp_path / "backups"
    backups.mkdir()
    env = container_env(docs, cron, container)
    return {
        "command": [part.replace(mounts[scripts_volume["name"]], str(mounted)) for part in container["command"]],
        "env": env,
        "scripts": mounted,
        "backups": backups,
        "backup_dir": mounts["backups"],
    }


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done


def local_env(job, database: str, **overrides: str) -> dict[str, str]:
    """The pod's environment, pointed at this machine's server, database and backup folder."""
    assert job["env"]["BACKUP_DIR"] == job["backup_dir"], "the job writes into its mounted volume"
    return job["env"] | {
        "PGHOST": SERVER.hostname,
        "PGPORT": str(SERVER.port),
        "PGUSER": SERVER.username,
        "PGPASSWORD": "",
        "PGDATABASE": database,
        "BACKUP_DIR": str(job["backups"]),
        **overrides,
    }


def test_the_cronjob_dumps_and_the_documented_restore_brings_every_row_back(job, database):
    assert job["env"]["PGDATABASE"] == "titanium" and int(job["env"]["BACKUP_KEEP"]) >= 7
    psql(database, "CREATE TABLE posts (id BIGSERIAL PRIMARY KEY, title TEXT NOT NULL, body TEXT)")
    psql(
        database,
        f"INSERT INTO posts (title, body) SELECT 'post ' || n, repeat('x', n) FROM generate_series(1, {ROWS}) n",
    )
    psql(database, "DELETE FROM posts WHERE id = 7")  # ids are never reused: the sequence must survive the restore
    before = psql(database, "SELECT md5(string_agg(id || title || coalesce(body, ''), ',' ORDER BY id)) FROM posts")

    output = run(job["command"], local_env(job, database)).stdout
    (dump,) = job["backups"].iterdir()
    assert dump.name.startswith(f"{database}-") and dump.suffix == ".dump" and dump.stat().st_size > 1000
    assert f"wrote {job['backups']}" in output

    psql(SERVER.path.lstrip("/"), f"DROP DATABASE {database} WITH (FORCE)")
    psql(SERVER.path.lstrip("/"), f"CREATE DATABASE {database}")
    assert psql(database, "SELECT count(*) FROM pg_tables WHERE tablename = 'posts'") == "0"

    # The guide's restore: restore.sh from the same ConfigMap, the newest dump by default.
    guide = (REPO_ROOT / "docs" / "kubernetes.md").read_text()
    assert '"command":["sh","/scripts/restore.sh"]' in guide
    run(["sh", str(job["scripts"] / "restore.sh")], local_env(job, database))
    assert psql(database, "SELECT count(*) FROM posts") == str(ROWS - 1)
    after = psql(database, "SELECT md5(string_agg(id || title || coalesce(body, ''), ',' ORDER BY id)) FROM posts")
    assert after == before
    assert psql(database, "INSERT INTO posts (title) VALUES ('new') RETURNING id") == str(ROWS + 1)


def test_retention_keeps_the_newest_dumps_and_a_failed_dump_leaves_no_backup(job, database):
    old = ["20240101T000000Z", "20250101T000000Z", "20260101T000000Z"]
    for stamp in old:
        (job["backups"] / f"{database}-{stamp}.dump").write_text("old")
    (job["backups"] / "unrelated.txt").write_text("kept")
    run(job["command"], local_env(job, database, BACKUP_KEEP="2"))
    kept = sorted(p.name for p in job["backups"].iterdir())
    assert len(kept) == 3 and f"{database}-{old[-1]}.dump" in kept and "unrelated.txt" in kept
    assert f"{database}-{old[0]}.dump" not in kept

    failed = subprocess.run(
        job["command"],
        env={**os.environ, **local_env(job, "no_such_database_here")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode != 0
    assert not [p.name for p in job["backups"].iterdir() if p.name.startswith("no_such")]
