"""Keeps benchmarks/parallel.py working: its --smoke mode runs the CLI with 1 and 2 workers; the ratio it
prints is the one of the throughputs it recorded (no timing is asserted)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.resume_helpers import cli_env

ROOT = Path(__file__).resolve().parents[1]


def test_parallel_benchmark_smoke(tmp_path):
    out = tmp_path / "parallel.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "parallel.py"), "--smoke", "--json", str(out)],
                          cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    m = json.loads(out.read_text())
    assert (m["n_trials"], m["epochs"], m["smoke"], m["target"]) == (2, 2, True, 1.6)
    one, two = m["runs"]
    assert (one["workers"], two["workers"]) == (1, 2)
    for run in (one, two):
        assert run["trials"] == 2, run  # counted in the Optuna storage of that configuration
        assert run["wall_s"] > 0 and run["trial_s"] > 0
        assert len(run["peak_mb"]) == run["workers"], run  # the launcher, and the --worker process it started
        assert all(200 < mb < 50_000 for mb in run["peak_mb"]), run  # processes with TensorFlow loaded
        peaks = ", ".join(f"{mb:.0f}" for mb in run["peak_mb"])
        line = (f"{run['workers']} worker(s): {run['trials']} trials, {run['per_minute']:.1f} trials/min over "
                f"{run['window_s']:.1f} s of training, {run['trial_s']:.2f} s per trial (wall {run['wall_s']:.0f} s); "
                f"peak memory per worker: {peaks} MB")
        assert line in done.stdout.splitlines(), done.stdout
    assert one["per_minute"] > 0 and one["window_s"] > 0  # one worker: all its trials, from its first start
    assert m["ratio"] == pytest.approx(two["per_minute"] / one["per_minute"], rel=1e-12)
    assert f"ratio 2 vs 1 workers: {m['ratio']:.2f}x (target >= 1.6x)" in done.stdout
    before, after = m["machine_ratio"]
    assert before > 0 and after > 0
    assert m["efficiency"] == pytest.approx(m["ratio"] / ((before + after) / 2), rel=1e-12)
    assert re.search(rf"^machine: two CPU-bound processes do {before:.2f}x / {after:.2f}x .* efficiency .*: "
                     rf"{m['efficiency']:.2f}$", done.stdout, re.M), done.stdout
