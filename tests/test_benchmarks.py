"""Smoke runs of the benchmark scripts (tiny data, seconds): they keep working, and what they write adds up.

The scripts run once, in two processes at the same time (``GROUPS``), started by one module fixture; the
tests read the files each script wrote (``results.jsonl``, the markdown tables, the plots, the CSV and JSON
files) and check that the figures printed and tabulated are the ones computed from
the recorded numbers. No timing is asserted. The output folders of vs_classic.py and levers.py start with a
stale row of an earlier run under each key a run writes: the run replaces it.
"""

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import warm_python
from tests.helpers import table_cells

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SMOKE = {
    "vs_classic": ["vs_classic.py", "--smoke", "--out", "{tmp}/vs"],
    "overhead": ["overhead.py", "--smoke", "--out", "{tmp}/overhead.txt", "--json", "{tmp}/overhead.json"],
    "checkpoint": ["overhead.py", "--smoke", "--checkpoint", "--out", "{tmp}/checkpoint.txt", "--json",
                   "{tmp}/checkpoint.json"],
    "epoch_scoring": ["epoch_scoring.py", "--smoke", "--json", "{tmp}/epoch_scoring.json"],
    "memory": ["memory.py", "--smoke", "--csv", "{tmp}/rss.csv"],
    # the user's-factory variant: the Hands-On factory compiles its own SGD, which must get the fix too
    "memory_own": ["memory.py", "--smoke", "--own-model", "--csv", "{tmp}/rss_own.csv"],
    "levers": ["levers.py", "--smoke", "--variants", "default", "plain+ensemble", "--out", "{tmp}/levers"],
    "minimal": ["minimal.py", "--smoke", "--out", "{tmp}/minimal", "--model", "feature_scaling=true"],
}
# An earlier run's rows under the keys the smoke runs write (method, seed): each must be replaced.
STALE = {
    "vs": [{"method": m, "seed": 42, "stale": True, "wall_time_s": 1.0, "test_mse": 99.0} for m in ("hgb", "ours", "classic")],
    "levers": [{"method": v, "variant": v, "seed": 42, "stale": True, "wall_time_s": 1.0, "test_mse": 99.0}
               for v in ("default", "plain+ensemble")],
    "minimal": [{"tool": t, "table": "smoke", "seed": 42, "stale": True, "score_name": "rmse", "score": 99.0,
                 "wall_time_s": 1.0, "task": "regression", "rows": 1, "columns": 1} for t in ("hgb", "hgb-tuned", "ours")],
}
PNG = b"\x89PNG\r\n\x1a\n"


def _env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _check(done: subprocess.CompletedProcess, name: str) -> str:
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file (its IHDR chunk); fails on anything else."""
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5000, path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# The smoke runs in two processes side by side, each running its scripts one after the other (as
# ``python SCRIPT ARGS`` would: tests.helpers.in_one_process): a TensorFlow and MLflow start-up saved per
# script. memory.py's two runs start a process each, first in it, so that each checks its fix in a fresh
# process (the user's-factory run must get the fix without the MLP run having applied anything before).
GROUPS = (("memory", "vs_classic", "overhead", "epoch_scoring"), ("memory_own", "levers", "minimal", "checkpoint"))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    """name -> (CompletedProcess, output folder) of every script's one --smoke run (two processes in parallel)."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.helpers import in_one_process

    tmp = tmp_path_factory.mktemp("bench")
    for folder, rows in STALE.items():
        (tmp / folder).mkdir()
        (tmp / folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**_env(), "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))}

    def run_group(index: int) -> list[dict]:
        cwd = tmp / f"process{index}"  # each process its own runner file (and MLflow folders); outputs in tmp
        cwd.mkdir()
        commands = [("script", BENCH / SMOKE[name][0], [a.format(tmp=tmp) for a in SMOKE[name][1:]], {})
                    for name in GROUPS[index]]
        return in_one_process(commands, cwd, env)

    with ThreadPoolExecutor(len(GROUPS)) as pool:
        results = list(pool.map(run_group, range(len(GROUPS))))
    assert sorted(n for group in GROUPS for n in group) == sorted(SMOKE)
    out = {}
    for group, done in zip(GROUPS, results, strict=True):
        for name, result in zip(group, done, strict=True):
            stderr = result["stderr"] + (result["error"] or "")
            out[name] = (subprocess.CompletedProcess(SMOKE[name], result["code"], result["stdout"], stderr), tmp)
    return out


def test_vs_classic_smoke(smoke):
    done, tmp = smoke["vs_classic"]
    stdout = _check(done, "vs_classic.py")
    out = tmp / "vs"
    rows = _rows(out / "results.jsonl")
    assert sorted(r["method"] for r in rows) == ["classic", "hgb", "ours"]
    assert not [r for r in rows if r.get("stale")]  # each run replaced the earlier row of its (method, seed)
    runs = {r["method"]: r for r in rows}
    classic, ours, hgb = runs["classic"], runs["ours"], runs["hgb"]
    for r in rows:
        assert r["seed"] == 42 and r["smoke"] is True, r
        assert r["wall_time_s"] > 0 and r["valid_mse"] > 0 and r["test_mse"] > 0, r
    assert len({r["y_test_digest"] for r in rows}) == 1  # the three scored the same test rows
    # the classic recipe, shrunk: 2 candidates of the notebook's space, 3-fold CV
    assert classic["n_trials"] == 2 and classic["cv_mse"] > 0
    assert set(classic["best_params"]) == {"n_hidden", "n_neurons", "learning_rate"}
    assert 0 <= classic["best_params"]["n_hidden"] <= 3 and 1 <= classic["best_params"]["n_neurons"] <= 99
    assert hgb["n_trials"] == 1 and hgb["best_params"] == {} and hgb["test_mse_full"] > 0
    # ours: 2 trials run (not a finished study resumed); the best-so-far curve of the run_study(observers=) hook
    assert ours["n_trials"] == 2 and ours["n_complete"] + ours["n_pruned"] <= 2 and ours["n_complete"] >= 1
    curve = ours["best_so_far"]
    assert curve, ours
    assert [p["trial"] for p in curve] == sorted({p["trial"] for p in curve})  # one point per new best, in order
    assert all(a["valid_mse"] > b["valid_mse"] for a, b in zip(curve, curve[1:], strict=False))
    assert 0 < curve[0]["elapsed_s"] and all(a["elapsed_s"] < b["elapsed_s"] for a, b in zip(curve, curve[1:], strict=False))
    assert curve[-1]["elapsed_s"] < ours["wall_time_s"]
    assert curve[-1]["valid_mse"] == ours["valid_mse"]  # the last new best is the study's best trial
    assert curve[-1]["test_mse"] == ours["best_trial_test_mse"] > 0

    # the printed ratios and the table are the recorded numbers'
    time_ratio = ours["wall_time_s"] / classic["wall_time_s"]
    mse_ratio = ours["test_mse"] / classic["test_mse"]
    hgb_ratio = ours["test_mse"] / hgb["test_mse"]
    reached = next((p["elapsed_s"] for p in curve if p["test_mse"] <= classic["test_mse"]), None)
    line = re.search(r"^ratio +seed 42 +time ours/classic (\S+) +test MSE ours/classic (\S+) +test MSE ours/HGB (\S+)"
                     r" +time to classic test MSE / classic time (\S+)$", stdout, re.M)
    assert line, stdout
    assert line.groups() == (f"{time_ratio:.3f}", f"{mse_ratio:.3f}", f"{hgb_ratio:.3f}",
                             "–" if reached is None else f"{reached / classic['wall_time_s']:.3f}")
    median = re.search(r"^median +time ratio (\S+) +test MSE ratio (\S+) .* our test MSE (\S+) +HGB test MSE (\S+) "
                       r"+\(1 runs of ours, 1 classic, 1 HGB\)$", stdout, re.M)
    assert median, stdout
    assert median.groups() == (f"{time_ratio:.3f}", f"{mse_ratio:.3f}", f"{ours['test_mse']:.3f}", f"{hgb['test_mse']:.3f}")
    table = (out / "results.md").read_text()
    assert table.startswith("| seed |")
    cells = table_cells(table, "42")
    assert cells[1:4] == [f"{classic['wall_time_s']:.0f}", f"{classic['cv_mse']:.3f}", f"{classic['test_mse']:.3f}"]
    assert cells[5:7] == [f"{hgb['valid_mse']:.3f}", f"{hgb['test_mse']:.3f}"]
    assert cells[8] == f"{ours['valid_mse']:.3f}" and cells[10] == f"{ours['test_mse']:.3f}"
    assert cells[11:14] == [f"{time_ratio:.3f}", f"{mse_ratio:.3f}", f"{hgb_ratio:.3f}"]
    assert f"test MSE {hgb['test_mse_full']:.3f} (median)" in table  # HGB on training + validation rows
    for name in ("test_mse_vs_time.png", "time_to_quality.png"):
        assert _png_size(out / name) == (768, 528), name  # 6.4 x 4.4 inches at 120 dpi

    # --report rebuilds the same table from results.jsonl alone
    again = tmp / "vs-report"
    again.mkdir()
    shutil.copy(out / "results.jsonl", again / "results.jsonl")
    report = warm_python.run([sys.executable, str(BENCH / "vs_classic.py"), "--report", str(again)], cwd=tmp,
                             env=_env(), capture_output=True, text=True, timeout=120)
    assert line.group(0) in _check(report, "vs_classic.py --report")
    assert (again / "results.md").read_text() == table
    assert _png_size(again / "time_to_quality.png") == (768, 528)


def test_overhead_smoke(smoke):
    done, tmp = smoke["overhead"]
    stdout = _check(done, "overhead.py")
    m = json.loads((tmp / "overhead.json").read_text())
    assert m["smoke"] is True and m["target"] == 1.05
    assert m["trials"] == 2 and 2 <= m["epochs"] <= 4  # two trials of at most 2 epochs, each replayed bare
    assert m["bare_s"] > 0 and m["loop_s"] > 0 and m["fixed_s"] > 0
    assert m["ratio"] == pytest.approx(m["loop_s"] / m["bare_s"], rel=1e-12)
    assert m["total_s"] == pytest.approx(m["loop_s"] + m["fixed_s"], rel=1e-12)
    lines = (tmp / "overhead.txt").read_text().splitlines()
    assert lines == stdout.splitlines()[-4:]  # --out holds the printed result lines
    per_trial = (m["loop_s"] - m["bare_s"]) / m["trials"] * 1000
    assert lines[0] == f"trials 2, epochs {m['epochs']}"
    assert lines[1] == (f"search loop through the runner {m['loop_s']:.2f} s, bare fits {m['bare_s']:.2f} s, "
                        f"per trial harness cost {per_trial:.0f} ms")
    assert lines[3] == f"harness ratio {m['ratio']:.3f} (target <= 1.05)"


def test_checkpoint_cost_smoke(smoke):
    """Two networks of the study fitted for 3 epochs with a checkpoint after each (but the last) and without:
    the printed cost is the recorded one."""
    done, tmp = smoke["checkpoint"]
    stdout = _check(done, "overhead.py --checkpoint")
    m = json.loads((tmp / "checkpoint.json").read_text())
    assert (m["smoke"], m["target"], m["fits"], m["epochs"], m["writes"]) == (True, 0.01, 2, 3, 4)
    assert m["on_s"] > 0 and m["off_s"] > 0 and m["write_s"] > 0 and m["bytes"] > 1000
    assert m["epoch_ms"] == pytest.approx(m["off_s"] / 6 * 1000, rel=1e-12)
    assert m["write_ms"] == pytest.approx(m["write_s"] / 4 * 1000, rel=1e-12)
    assert m["default_cost"] == pytest.approx(m["write_ms"] / m["default_every"] / m["epoch_ms"], rel=1e-12)
    lines = (tmp / "checkpoint.txt").read_text().splitlines()
    assert lines == stdout.splitlines()[-3:]
    met = "met" if m["default_cost"] <= 0.01 else "NOT met"
    assert lines[2] == (f"checkpoint cost per epoch: every epoch {100 * m['every_epoch']:.2f}% of fit time, default "
                        f"(every {m['default_every']:.0f} epochs here) {100 * m['default_cost']:.2f}% "
                        f"(target <= 1%: {met})")


def test_epoch_scoring_smoke(smoke):
    """Two trials of 3 epochs: every epoch timed on both sides, and the printed cost is the recorded one."""
    done, tmp = smoke["epoch_scoring"]
    stdout = _check(done, "epoch_scoring.py")
    m = json.loads((tmp / "epoch_scoring.json").read_text())
    assert (m["smoke"], m["target"], m["trials"], m["epochs"], m["metric"]) == (True, 0.05, 2, 6, "mse")
    assert m["train_s"] > 0 and m["ours_s"] > 0 and m["keras_s"] > 0
    assert m["cost"] == pytest.approx((m["ours_s"] - m["keras_s"]) / (m["train_s"] + m["keras_s"]), rel=1e-12)
    met = "met" if m["cost"] <= 0.05 else "NOT met"
    assert stdout.splitlines()[-1] == (f"per-epoch objective cost: {100 * m['cost']:+.1f}% of fitting time "
                                       f"(target <= 5%: {met})")


@pytest.mark.parametrize("run, csv_name", [("memory", "rss.csv"), ("memory_own", "rss_own.csv")])
def test_memory_smoke(smoke, run, csv_name):
    done, tmp = smoke[run]
    stdout = _check(done, "memory.py")
    with open(tmp / csv_name, newline="") as fh:
        rows = list(csv.DictReader(fh))
    # RSS read at the start of each of the 4 trials: after 0, 1, 2 and 3 finished trials
    assert [int(r["trials"]) for r in rows] == [0, 1, 2, 3]
    rss = {int(r["trials"]): r["rss_mb"] for r in rows}
    registry = {int(r["trials"]): int(r["gradient_registry"]) for r in rows}
    assert all(200 < float(v) < 50_000 for v in rss.values()), rss  # a process with TensorFlow loaded
    assert re.search(r"^4 trials \(\d+ complete, \d+ pruned\) in \d+ s$", stdout, re.M), stdout
    assert f"RSS after trial 1: {rss[1]} MB, after trial 3: {rss[3]} MB\n" in stdout
    growth = re.search(r"^growth ([+-][\d.]+) MB over 2 trials", stdout, re.M)
    assert growth and float(growth.group(1)) == pytest.approx(float(rss[3]) - float(rss[1]), abs=0.11)
    # the one-replica all-reduce fix: no gradient function left behind per fit
    assert registry[3] - registry[1] == 0 and registry[1] > 0
    assert "TensorFlow gradient registry: +0 entries over the same trials (with the one-replica" in stdout


def test_levers_smoke(smoke):
    done, tmp = smoke["levers"]
    stdout = _check(done, "levers.py")
    rows = _rows(tmp / "levers" / "results.jsonl")
    assert sorted(r["variant"] for r in rows) == ["default", "plain+ensemble"]
    assert not [r for r in rows if r.get("stale")]  # each run replaced the earlier row of its (variant, seed)
    by = {r["variant"]: r for r in rows}
    for name, r in by.items():
        assert r["method"] == name and r["seed"] == 42 and r["smoke"] is True
        assert r["n_trials"] == 2 and r["n_complete"] >= 1 and r["wall_time_s"] > 0
        assert r["test_mse"] > 0 and r["best_trial_test_mse"] > 0 and r["ensemble_members"] >= 1
    default, plain = by["default"], by["plain+ensemble"]
    table = (tmp / "levers" / "results.md").read_text()
    assert table.startswith("| variant |")
    assert table_cells(table, "default") == ["default", f"{default['test_mse']:.4f}", "+0.0000",
                                        f"{default['wall_time_s']:.0f}", "1.00x", "1"]
    assert table_cells(table, "default without the ensemble (its best trial)")[1:3] == [
        f"{default['best_trial_test_mse']:.4f}", f"{default['best_trial_test_mse'] - default['test_mse']:+.4f}"]
    change = plain["test_mse"] - default["test_mse"]
    assert table_cells(table, "plain+ensemble") == ["plain+ensemble", f"{plain['test_mse']:.4f}", f"{change:+.4f}",
                                               f"{plain['wall_time_s']:.0f}",
                                               f"{plain['wall_time_s'] / default['wall_time_s']:.2f}x", "1"]
    assert re.search(rf"^plain\+ensemble +test MSE {plain['test_mse']:.4f} \({change:+.4f}\)", stdout, re.M), stdout


def test_levers_variants_change_one_setting_each(monkeypatch):
    """The variants of RealMLP's levers and the cosine schedule: the default study with one setting changed."""
    import importlib.util

    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("levers", BENCH / "levers.py")
    levers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(levers)
    default = levers.variant_config("default", levers.DEFAULT_STUDY, True).model_dump()
    changed = {"cosine": ("model", "lr_schedule", "cosine"), "robust-scaling": ("preprocessing", "scaling", "robust"),
               "feature-scaling": ("model", "feature_scaling", True)}
    assert set(changed) <= set(levers.VARIANTS)
    for name, (section, key, value) in changed.items():
        config = levers.variant_config(name, levers.DEFAULT_STUDY, True).model_dump()
        assert config[section][key] == value and default[section][key] != value, name
        config[section][key], config["name"] = default[section][key], default["name"]
        assert config == default, name


def test_minimal_study_smoke(smoke):
    """A study of only name and dataset (a CSV of the diabetes rows) against HistGradientBoosting with native
    categoricals on the same rows: both scored, the ratio and the verdict in the table."""
    done, tmp = smoke["minimal"]
    stdout = _check(done, "minimal.py")
    rows = _rows(tmp / "minimal" / "results.jsonl")
    assert not [r for r in rows if r.get("stale")] and sorted(r["tool"] for r in rows) == ["hgb", "hgb-tuned", "ours"]
    by = {r["tool"]: r for r in rows}
    ours, hgb, tuned = by["ours"], by["hgb"], by["hgb-tuned"]
    assert ours["score_name"] == hgb["score_name"] == "rmse" and ours["n_trials"] == 2 and ours["smoke"] is True
    assert ours["rows"] == hgb["rows"] > 200  # the same training rows (facts the recipe sized the study with)
    assert 0 < ours["score"] < 200 and 0 < hgb["score"] < 200  # diabetes targets: 25-346
    table = (tmp / "minimal" / "results.md").read_text()
    cells = table_cells(table, "smoke")
    assert cells[5:8] == [f"{ours['score']:.4g}", f"{hgb['score']:.4g}", f"**{ours['score'] / hgb['score']:.3f}**"]
    # tuned HGB: 3 Optuna trials in smoke mode on the validation rows, refitted, scored on the same test rows
    assert tuned["n_trials"] == 3 and tuned["rows"] == ours["rows"] and 0 < tuned["score"] < 200
    assert set(tuned["params"]) == {"learning_rate", "max_leaf_nodes", "min_samples_leaf", "l2_regularization"}
    assert cells[8:10] == [f"{tuned['score']:.4g}", f"**{ours['score'] / tuned['score']:.3f}**"]
    assert "tuned HistGradientBoosting" in stdout and ours["members"] == 1
    assert ("beats HistGradientBoosting" in stdout) and _png_size(tmp / "minimal" / "ratio.png")[0] > 300
    # --model feature_scaling=true: the study's networks start with the per-feature scale
    from tuning.export.files import load_model

    assert ours["model"] == {"feature_scaling": True} and "model" not in hgb
    (export,) = (tmp / "minimal" / "runs").glob("*/export")
    fitted = load_model(export).named_steps["model"]
    for network in getattr(fitted, "estimators_", [fitted]):
        assert type(network.model_.layers[0]).__name__ == "FeatureScale"


@pytest.fixture(scope="module")
def peers_smoke(tmp_path_factory):
    """One --smoke run of vs_peers.py (every tool, 2 trials of 2 epochs on the diabetes data), with a stored
    vs_classic.py results file whose classic row for the same seed and test rows is reused."""
    reason = 'benchmark extra not installed: pip install -e ".[bench]"'
    pytest.importorskip("keras_tuner", reason=f"keras_tuner missing ({reason})")
    pytest.importorskip("optuna_integration", reason=f"optuna_integration missing ({reason})")
    import hashlib

    import numpy as np
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    data = load_diabetes()
    y_test = train_test_split(data.data, data.target, random_state=42)[3]  # the split of vs_classic.py
    digest = hashlib.sha256(np.asarray(y_test, dtype="float32").tobytes()).hexdigest()[:16]
    tmp = tmp_path_factory.mktemp("peers")
    stored = [  # a housing row (not smoke) and a row on other test rows: neither may be reused
        {"method": "classic", "seed": 42, "smoke": False, "wall_time_s": 2400.0, "test_mse": 0.3, "valid_mse": 0.3,
         "n_trials": 10, "best_params": {}, "y_test_digest": digest},
        {"method": "classic", "seed": 42, "smoke": True, "wall_time_s": 99.0, "test_mse": 1.0, "valid_mse": 1.0,
         "n_trials": 2, "best_params": {}, "y_test_digest": "0" * 16},
        {"method": "classic", "seed": 42, "smoke": True, "wall_time_s": 123.0, "test_mse": 5000.0,
         "valid_mse": 5100.0, "n_trials": 2, "best_params": {"n_hidden": 1}, "y_test_digest": digest},
    ]
    (tmp / "classic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stored))
    done = warm_python.run([sys.executable, str(BENCH / "vs_peers.py"), "--smoke", "--out", str(tmp / "peers"),
                            "--classic-results", str(tmp / "classic.jsonl")], cwd=tmp, env=_env(),
                           capture_output=True, text=True, timeout=600)
    return done, tmp / "peers", digest


def test_vs_peers_smoke(peers_smoke):
    done, out, digest = peers_smoke
    stdout = _check(done, "vs_peers.py")
    rows = {r["tool"]: r for r in _rows(out / "results.jsonl")}
    assert sorted(rows) == sorted(["hgb", "ours", "optuna", "kt-bayes", "kt-hyperband", "classic"])
    for r in rows.values():
        assert (r["dataset"], r["seed"], r["smoke"], r["y_test_digest"]) == ("diabetes", 42, True, digest), r
        assert r["wall_time_s"] > 0 and r["test_mse"] > 0 and r["curve"], r
        times = [p["elapsed_s"] for p in r["curve"]]
        assert times == sorted(times) and times[-1] <= r["wall_time_s"] + 1e-9, r
    for tool in ("optuna", "kt-bayes", "kt-hyperband"):  # 2 trials; a point per new best on validation
        r = rows[tool]
        assert r["n_trials"] == 2 and 1 <= len(r["curve"]) <= 2, r
        valid = [p["valid_mse"] for p in r["curve"]]
        assert all(a > b for a, b in zip(valid, valid[1:], strict=False)) and valid[-1] == pytest.approx(r["valid_mse"])
    ours = rows["ours"]
    assert ours["n_trials"] == 2 and ours["curve"][-1]["trial"] == "exported"
    assert ours["curve"][-1]["test_mse"] == ours["test_mse"] and ours["curve"][-1]["elapsed_s"] == ours["wall_time_s"]
    classic = rows["classic"]  # the stored smoke row on the same test rows, not run again
    assert (classic["wall_time_s"], classic["test_mse"], classic["reused_from"]) == (123.0, 5000.0, "classic.jsonl")
    assert "classic diabetes seed 42: reused the stored run of vs_classic.py" in stdout
    assert "running classic" not in stdout

    def significant(v):  # 4 significant digits
        return f"{v:.{max(0, 3 - math.floor(math.log10(abs(v))))}f}"

    report = (out / "results.md").read_text()
    medians, table = report.split("### diabetes, seed 42", 1)  # the medians over seeds first, then each run
    assert medians.startswith("### diabetes: medians over seeds 42")
    assert table_cells(medians, "ours (studies/housing.yaml)")[1:4] == [
        "1", f"**{significant(ours['test_mse'])}**", f"{ours['wall_time_s']:.1f}"]
    assert table_cells(table, "ours (studies/housing.yaml)")[1:4] == [
        f"**{significant(ours['test_mse'])}**", f"{ours['wall_time_s']:.1f}", "2"]
    labels = {"hgb": "HistGradientBoosting defaults", "optuna": "Optuna by hand (TPE + Hyperband pruner)",
              "kt-bayes": "KerasTuner BayesianOptimization", "kt-hyperband": "KerasTuner Hyperband",
              "classic": "classic RandomizedSearchCV (stored run)"}
    slow, above = [], []
    for tool, label in labels.items():
        r = rows[tool]
        reach = next((p["elapsed_s"] for p in ours["curve"] if p["test_mse"] <= r["test_mse"]), None)
        fraction = None if reach is None else reach / r["wall_time_s"]
        below = ours["test_mse"] < r["test_mse"]
        assert table_cells(table, label)[1:] == [
            significant(r["test_mse"]), f"{r['wall_time_s']:.1f}", str(r["n_trials"]),
            "never" if reach is None else f"{reach:.1f}", "–" if fraction is None else f"{fraction:.3f}",
            "yes" if below else "no"], tool
        median_label = label.replace(" (stored run)", "")  # one seed: its median is the run itself
        assert table_cells(medians, median_label)[1:] == [
            "1", significant(r["test_mse"]), f"{r['wall_time_s']:.1f}",
            "never" if fraction is None else f"{fraction:.3f}", f"{int(below)}/1 seeds"], tool
        printed = re.search(rf"^peer {re.escape(tool)} +diabetes seed 42: .* fraction (\S+)", stdout, re.M)
        assert printed and printed.group(1) == ("–" if fraction is None else f"{fraction:.3f}"), stdout
        if fraction is None or fraction > 0.1:
            slow.append(tool)
        if not below:
            above.append(tool)
    verdict = re.search(r"^targets diabetes seed 42: \(1\) .*: (met|NOT met \(([^)]*)\)) +\(2\) .*: "
                        r"(met|NOT met \(([^)]*)\))$", stdout, re.M)
    assert verdict, stdout
    order = ["hgb", "optuna", "kt-bayes", "kt-hyperband", "classic"]
    assert verdict.group(1) == ("met" if not slow else f"NOT met ({', '.join(t for t in order if t in slow)})")
    assert verdict.group(3) == ("met" if not above else f"NOT met ({', '.join(t for t in order if t in above)})")
    assert _png_size(out / "time_to_quality-diabetes.png") == (864, 576)  # 7.2 x 4.8 inches at 120 dpi (room for the legend)

    # --report rebuilds the same table from results.jsonl alone
    again = out.parent / "peers-report"
    again.mkdir()
    shutil.copy(out / "results.jsonl", again / "results.jsonl")
    report = warm_python.run([sys.executable, str(BENCH / "vs_peers.py"), "--report", str(again)], env=_env(),
                             capture_output=True, text=True, timeout=120)
    _check(report, "vs_peers.py --report")
    assert (again / "results.md").read_text() == medians + "### diabetes, seed 42" + table


@pytest.mark.parametrize("script", ["vs_classic.py", "overhead.py", "memory.py", "levers.py", "vs_peers.py",
                                    "epoch_scoring.py"])
def test_help(script):
    done = warm_python.run([sys.executable, str(BENCH / script), "--help"], env=_env(), capture_output=True,
                           text=True, timeout=60)
    assert "--smoke" in _check(done, script)
