"""The suite imports its own helpers (``tests.helpers``, ``tests.resume_helpers``...) even where an installed
distribution ships a top-level ``tests`` package: pytest collects, and a subprocess given the repository on
PYTHONPATH imports them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a child process with a site directory holding a top-level ``tests`` package (as ``pip install`` of such a
# distribution leaves in site-packages), then the code of the test
_WITH_SITE = "import site, sys; site.addsitedir(sys.argv.pop(1)); "


def _site_with_tests_package(tmp_path: Path) -> Path:
    site = tmp_path / "site-packages"
    (site / "tests").mkdir(parents=True)
    (site / "tests" / "__init__.py").write_text('"""Another distribution\'s tests."""\n')
    return site


def _run(code: str, site: Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _WITH_SITE + code, str(site)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_pytest_collects_the_suite_beside_an_installed_tests_package(tmp_path):
    site = _site_with_tests_package(tmp_path)
    code = ("import pytest; sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', "
            "'tests/test_clean_run.py', 'tests/test_parallel_smoke.py']))")
    done = _run(code, site, ROOT, dict(os.environ))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 tests collected" in done.stdout, done.stdout[-3000:]


def test_a_subprocess_with_the_repository_on_pythonpath_imports_the_helpers(tmp_path):
    site = _site_with_tests_package(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    code = "import tests.resume_helpers as helpers; print(helpers.__file__)"
    done = _run(code, site, tmp_path, env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(done.stdout.strip()) == ROOT / "tests" / "resume_helpers.py"
