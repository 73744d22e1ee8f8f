"""`make clean-data`: the local suite's data directory goes, so that the next `make run` starts empty."""

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_make_clean_data_removes_the_data_directory_and_nothing_else(tmp_path):
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    (data / "users.db").write_text("x")
    (data / "nested" / "posts.db").write_text("x")
    beside = tmp_path / "keep.txt"
    beside.write_text("x")
    done = subprocess.run(
        ["make", "--no-print-directory", "clean-data", f"DATA_DIR={data}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not data.exists() and beside.exists()
    assert "next make run starts with no users" in done.stdout
