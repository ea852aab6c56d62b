"""Keeps benchmarks/parallel.py working: its --smoke mode runs the CLI with 1 and 2 workers."""

import re
import subprocess
import sys
from pathlib import Path

from resume_helpers import cli_env

ROOT = Path(__file__).resolve().parents[1]


def test_parallel_benchmark_smoke():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "parallel.py"), "--smoke"], cwd=ROOT,
                          env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "ratio 2 vs 1 workers" in done.stdout
    assert done.stdout.count("peak memory per worker") == 2
    assert re.search(r"^machine: two CPU-bound processes do \d+\.\d+x / \d+\.\d+x .* efficiency .*: \d+\.\d+$",
                     done.stdout, re.M)
