"""Smoke runs of the benchmark scripts (tiny data, seconds): they keep working; no timing is asserted.

The three scripts run at once, each in its own process (``sys.executable``), started by one fixture; and
then once more into the same output folder (a second run starts its studies fresh: it never resumes the
first run's finished study, nor divides by a figure that run could not give).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SMOKE = {
    "vs_classic": ["vs_classic.py", "--smoke", "--out", "{tmp}/vs"],
    "overhead": ["overhead.py", "--smoke"],
    "memory": ["memory.py", "--smoke", "--csv", "{tmp}/rss.csv"],
    "levers": ["levers.py", "--smoke", "--variants", "default", "plain+ensemble", "--out", "{tmp}/levers"],
}


def _env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _check(done: subprocess.CompletedProcess, name: str) -> str:
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    """name -> (stdout, output directory) of every script's second --smoke run into the same folder (the
    scripts run in parallel; the first run of each must pass too)."""
    tmp = tmp_path_factory.mktemp("bench")
    for round_ in ("first", "second"):
        procs = {}
        for name, (script, *args) in SMOKE.items():
            cmd = [sys.executable, str(BENCH / script), *(a.format(tmp=tmp) for a in args)]
            procs[name] = subprocess.Popen(cmd, cwd=tmp, env=_env(), stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
        out = {}
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=600)
            out[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), tmp)
        if round_ == "first":
            for name, (done, _) in out.items():
                _check(done, f"{name} (first run)")
    return out


def test_vs_classic_smoke(smoke):
    done, tmp = smoke["vs_classic"]
    stdout = _check(done, "vs_classic.py")
    assert re.search(r"^ratio +seed 42 +time ours/classic \d+\.\d+ +test MSE ours/classic \d+\.\d+", stdout, re.M)
    assert re.search(r"^median +time ratio \d+\.\d+", stdout, re.M)
    out = tmp / "vs"
    for name in ("results.jsonl", "results.md", "test_mse_vs_time.png", "time_to_quality.png"):
        assert (out / name).stat().st_size > 0, name
    runs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in runs) == ["classic", "hgb", "ours"]  # the second run replaced the first's
    hgb = next(r for r in runs if r["method"] == "hgb")
    assert hgb["test_mse"] > 0 and hgb["test_mse_full"] > 0 and hgb["y_test_digest"] == runs[0]["y_test_digest"]
    assert re.search(r"test MSE ours/HGB \d+\.\d+", stdout)
    assert "test MSE –" not in stdout
    ours = next(r for r in runs if r["method"] == "ours")
    assert ours["best_so_far"] and ours["best_so_far"][0]["elapsed_s"] > 0  # the run_study(observers=) hook
    assert ours["test_mse"] > 0 and ours["n_trials"] == 2  # trained again, not the first run's study resumed
    table = (out / "results.md").read_text()
    assert table.startswith("| seed |") and "| 42 |" in table and "HGB test MSE" in table
    report = subprocess.run([sys.executable, str(BENCH / "vs_classic.py"), "--report", str(out)], cwd=tmp,
                            env=_env(), capture_output=True, text=True, timeout=120)
    assert "median" in _check(report, "vs_classic.py --report")  # rebuilt from results.jsonl


def test_overhead_smoke(smoke):
    stdout = _check(smoke["overhead"][0], "overhead.py")
    assert re.search(r"^trials 2, epochs \d+", stdout, re.M)
    assert re.search(r"^harness ratio \d+\.\d+ \(target <= 1\.05\)", stdout, re.M)


def test_memory_smoke(smoke):
    done, tmp = smoke["memory"]
    stdout = _check(done, "memory.py")
    assert re.search(r"^RSS after trial 1: [\d.]+ MB, after trial 3: [\d.]+ MB", stdout, re.M)
    assert re.search(r"^growth [+-][\d.]+ MB", stdout, re.M)
    assert (tmp / "rss.csv").read_text().startswith("trials,rss_mb\n")


def test_levers_smoke(smoke):
    done, tmp = smoke["levers"]
    stdout = _check(done, "levers.py")
    assert re.search(r"^default without the ensemble \(its best trial\) +test MSE \d+\.\d+", stdout, re.M)
    assert re.search(r"^plain\+ensemble +test MSE \d+\.\d+ \([+-]\d+\.\d+\)", stdout, re.M)
    runs = [json.loads(line) for line in (tmp / "levers" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["variant"] for r in runs) == ["default", "plain+ensemble"]  # the second run replaced the first's
    by = {r["variant"]: r for r in runs}
    assert by["default"]["ensemble_members"] >= 1 and by["plain+ensemble"]["ensemble_members"] >= 1
    assert (tmp / "levers" / "results.md").read_text().startswith("| variant |")


@pytest.mark.parametrize("script", ["vs_classic.py", "overhead.py", "memory.py", "levers.py"])
def test_help(script):
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"], env=_env(), capture_output=True,
                          text=True, timeout=60)
    assert "--smoke" in _check(done, script)
