"""docs/architecture.md lists every module of the packages, and nothing that no longer exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def listed_modules() -> set[str]:
    """Paths in the first column of the module table; ``a/b.py`, `c.py`` shorthand means ``a/c.py``."""
    found = set()
    for line in DOC.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        folder = None
        for path in re.findall(r"`([^`]+\.py)`", first):
            if "/" in path:
                folder = path.rsplit("/", 1)[0]
                found.add(path)
            elif folder:
                found.add(f"{folder}/{path}")
    return found


def package_modules() -> set[str]:
    return {str(p.relative_to(ROOT)) for pkg in ("tuning", "estimators") for p in (ROOT / pkg).rglob("*.py")
            if p.name != "__init__.py" and p.name != "__main__.py"}


def test_every_module_is_in_the_table():
    missing = package_modules() - listed_modules()
    assert not missing, f"add these to the module table of docs/architecture.md: {sorted(missing)}"


def test_the_table_lists_no_module_that_is_gone():
    gone = listed_modules() - package_modules()
    assert not gone, f"docs/architecture.md lists modules that do not exist: {sorted(gone)}"
