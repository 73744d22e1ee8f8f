"""Every reference in the code and docs is one a reader of the repository can place: the original system's parts
are named as docs/compatibility.md describes them, and nothing points at an issue tracker or notes outside it."""

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".git", ".venv", ".tools", ".cache", ".data", "node_modules", "test-output", "results", "__pycache__"}
TEXT_SUFFIXES = {".py", ".md", ".js", ".html", ".css", ".yaml", ".yml", ".toml", ".sh", ".txt", ".cfg", ".ini"}
UNPLACEABLE = {
    "an issue number (say why instead)": re.compile(r"\bissue\s*#?\d+", re.IGNORECASE),
    "notes outside the repository": re.compile(r"\bseeds?/|DESIGN\.md|DESIGN section", re.IGNORECASE),
    "an original project by a name only its own README used (see docs/compatibility.md)": re.compile(
        r"PF Dashboard|the original server\b", re.IGNORECASE
    ),
}
# The one page that introduces the original projects by their own names.
INTRODUCES_THE_ORIGINALS = REPO_ROOT / "docs" / "compatibility.md"


def _text_files() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".hypothesis")]
        found += [Path(folder, name) for name in files if Path(name).suffix in TEXT_SUFFIXES or name == "Makefile"]
    return found


def test_code_and_docs_name_nothing_a_reader_cannot_place():
    problems = []
    for path in _text_files():
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(errors="replace")
        for what, pattern in UNPLACEABLE.items():
            if path == INTRODUCES_THE_ORIGINALS and "original project" in what:
                continue
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{path.relative_to(REPO_ROOT)}:{line}: {match.group(0)!r}: {what}")
    assert not problems, "\n".join(problems)


def test_the_check_finds_what_it_looks_for():
    samples = ["see issue 20", "(Issue #7)", "from seeds/000.txt", "DESIGN.md §10", "as the PF Dashboard reads it"]
    assert all(any(p.search(sample) for p in UNPLACEABLE.values()) for sample in samples)
    assert not any(p.search("the original edge server's label, a random seed") for p in UNPLACEABLE.values())
