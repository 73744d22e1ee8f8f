"""One of each: no block of 6 or more lines stands twice between two services' packages (the kit and the
development launcher count as members too: a block copied from one means the copy should call it), nor between two
test modules or helpers (conftest.py files, tests/support, every test module, load-tests). pylint's duplicate-code
checker (`symilar`) decides, with comments, docstrings and imports left out; a block repeated inside one package is
that package's own business."""

import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from tests.support.deploy import REPO_ROOT, workspace_members

SYMILAR = Path(sys.executable).with_name("symilar")
# symilar reports a block only when it is longer than `-d` lines: 5 catches every block of 6 or more.
MIN_LINES = 6
# Left out on purpose: Alembic writes each revision from its template (the same header and revision fields in every
# migration of every service), and a migration is never edited afterwards.
LEFT_OUT = re.compile(r"/migrations/versions/")
_REPORT = re.compile(r"^(\d+) similar lines in \d+ files\n((?:==.+:\[\d+:\d+\]\n)+)", re.MULTILINE)
_PLACE = re.compile(r"^==(.+):\[(\d+):(\d+)\]$", re.MULTILINE)


def repeated_blocks(files: Iterable[Path], root: Path = REPO_ROOT) -> list[tuple[int, list[str]]]:
    """(lines, ["path:first-last", ...]) for every block of MIN_LINES or more that stands in several places."""
    names = sorted(str(path.relative_to(root)) for path in files)
    argv = [str(SYMILAR), "-d", str(MIN_LINES - 1), "--ignore-comments", "--ignore-docstrings", "--ignore-imports"]
    report = subprocess.run([*argv, *names], cwd=root, capture_output=True, text=True, check=True).stdout
    return [
        (int(lines), [f"{path}:{int(start) + 1}-{end}" for path, start, end in _PLACE.findall(places)])
        for lines, places in _REPORT.findall(report)
    ]


def python_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.py") if "node_modules" not in p.parts and not LEFT_OUT.search(p.as_posix())]


def member_packages() -> dict[str, list[Path]]:
    """Each workspace member's importable code (its packages, not its tests)."""
    packages = {}
    for member in workspace_members():
        folders = [p.parent for p in (REPO_ROOT / member).glob("*/__init__.py") if p.parent.name != "tests"]
        packages[member] = [f for folder in folders for f in python_files(folder)]
    return packages


def helper_files() -> list[Path]:
    folders = [REPO_ROOT / m / "tests" for m in workspace_members()] + [REPO_ROOT / "tests", REPO_ROOT / "load-tests"]
    return [REPO_ROOT / "conftest.py", *(f for folder in folders if folder.is_dir() for f in python_files(folder))]


def owner(place: str) -> str:
    return place.split("/", 1)[0]


def test_no_block_stands_in_two_services_packages():
    packages = member_packages()
    assert {"common", "api-gateway", "load-balancer", "dev"} <= set(packages)
    assert all(packages.values()), "every member has code to compare"
    copies = [
        (lines, places)
        for lines, places in repeated_blocks(f for files in packages.values() for f in files)
        if len({owner(p) for p in places}) > 1
    ]
    assert not copies, f"blocks copied between members (move them into the kit): {copies}"


def test_no_block_stands_in_two_test_modules():
    helpers = helper_files()
    assert REPO_ROOT / "tests" / "support" / "servers.py" in helpers
    copies = [
        (lines, places) for lines, places in repeated_blocks(helpers) if len({p.rsplit(":", 1)[0] for p in places}) > 1
    ]
    assert not copies, f"blocks copied between test modules (share them through tests/support): {copies}"


def test_a_planted_copy_of_six_lines_is_found_and_five_are_not(tmp_path):
    """The threshold as the checker counts it: six repeated lines are a copy, five are not."""
    six = "\n".join(f"    total_{i} = weigh(parts[{i}]) * {i + 2}" for i in range(6))
    five = "\n".join(f"    part_{i} = measure(items[{i}]) + {i + 3}" for i in range(5))
    a, b = tmp_path / "one" / "a.py", tmp_path / "two" / "b.py"
    for path in (a, b):
        path.parent.mkdir()
    a.write_text(f"def a(parts, items):\n{six}\n    start = 1\n{five}\n    return 1\n")
    b.write_text(f"def b(parts, items):\n    x = 0\n{six}\n    end = 2\n{five}\n    return 2\n")
    found = repeated_blocks([a, b], root=tmp_path)
    assert found == [(6, ["one/a.py:2-7", "two/b.py:3-8"])]
