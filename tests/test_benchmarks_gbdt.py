"""Smoke run of benchmarks/vs_gbdt.py (generated data, 2 trials of 2 epochs), once for the module: it keeps
working, and the ratios it prints and tabulates are those of the numbers it recorded; no timing or quality
is asserted."""

import json
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
SCRIPT = ROOT / "benchmarks" / "vs_gbdt.py"
NUMBER = r"\d+(\.\d+)?"


def run_vs_gbdt(*args: str, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = warm_python.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=600)
    assert done.returncode == expect, f"vs_gbdt.py exit {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    tmp = tmp_path_factory.mktemp("gbdt")
    return run_vs_gbdt("--smoke", "--out", str(tmp / "out"), cwd=tmp), tmp / "out"


def _near(cell: str, value: float) -> bool:
    """A table cell shows ``value`` (4 significant digits, or more)."""
    return float(cell.replace(",", "")) == pytest.approx(value, rel=1e-3)


def test_smoke_writes_table_plot_and_results(smoke):
    done, out = smoke
    runs = {r["method"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert sorted(runs) == ["hgb", "ours"]
    ours, hgb = runs["ours"], runs["hgb"]
    for r in (ours, hgb):
        assert (r["dataset"], r["seed"], r["rows"], r["smoke"]) == ("smoke", 42, 300, True), r
        assert (r["n_train"], r["n_valid"], r["n_test"]) == (168, 57, 75)  # 300 rows split 25 % twice
        assert r["wall_time_s"] > 0 and r["valid_rmse"] > 0 and r["test_rmse"] > 0, r
    assert ours["y_test_digest"] == hgb["y_test_digest"]  # the study split the baseline's rows
    assert ours["n_trials"] == 2 and ours["n_complete"] >= 1 and ours["study_test_rmse"] > 0
    assert ours["test_rmse"] == pytest.approx(ours["study_test_rmse"], rel=1e-4)  # exported model = study's
    assert hgb["trainvalid_test_rmse"] > 0 and hgb["n_iter"] >= 1 and hgb["trainvalid_n_iter"] >= 1
    # the printed ratios and the tables are the recorded numbers'
    ratio, ratio_all = ours["test_rmse"] / hgb["test_rmse"], ours["test_rmse"] / hgb["trainvalid_test_rmse"]
    assert re.search(rf"^ratio smoke +seed 42 +test RMSE ours/HGB {ratio:.3f} +ours/HGB\(train\+valid\) {ratio_all:.3f}$",
                     done.stdout, re.M), done.stdout
    table = (out / "results.md").read_text()
    summary = table_cells(table, "smoke")  # the first table: one row per data set
    assert summary[1] == "300" and summary[4] == f"{ratio:.3f}" and summary[8] == "42"
    assert _near(summary[2], ours["test_rmse"]) and _near(summary[3], hgb["test_rmse"])
    assert _near(summary[5], hgb["trainvalid_test_rmse"]) and summary[6] == f"{ours['wall_time_s']:.1f}"
    per_run = table_cells(table.split("| data set | seed |", 1)[1], "smoke")  # the second table: one row per run
    assert per_run[1] == "42" and per_run[5] == f"{ratio:.3f}" and per_run[7] == f"{ratio_all:.3f}"
    assert _near(per_run[2], ours["valid_rmse"]) and _near(per_run[3], ours["test_rmse"])
    png = (out / "rmse_ratio.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert (out / "smoke-data" / "uci" / "smoke" / "data.txt").is_file()  # generated under the output folder


def test_report_rebuilds_from_results(smoke, tmp_path):
    _, out = smoke
    shutil.copy(out / "results.jsonl", tmp_path / "results.jsonl")
    done = run_vs_gbdt("--report", str(tmp_path), cwd=tmp_path)
    runs = {r["method"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    line = re.search(rf"^median smoke +ours ({NUMBER}) +HGB ({NUMBER}) +ratio (\S+)", done.stdout, re.M)
    assert line, done.stdout
    assert _near(line.group(1), runs["ours"]["test_rmse"]) and _near(line.group(3), runs["hgb"]["test_rmse"])
    assert line.group(5) == f"{runs['ours']['test_rmse'] / runs['hgb']['test_rmse']:.3f}"
    assert (tmp_path / "results.md").read_text() == (out / "results.md").read_text()  # from results.jsonl alone
    assert (tmp_path / "rmse_ratio.png").read_bytes().startswith(b"\x89PNG")


def test_missing_data_folder_skips(tmp_path):
    done = run_vs_gbdt("--data", str(tmp_path / "absent"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert "skipped: no UCI data folder" in done.stdout and not (tmp_path / "out" / "results.jsonl").exists()


def test_bad_study_file_exits_2(tmp_path):
    uci = tmp_path / "data" / "uci" / "concrete"
    uci.mkdir(parents=True)
    (uci / "data.txt").write_text("1 2 3\n4 5 6\n")
    (uci / "index_features.txt").write_text("0\n1\n")
    (uci / "index_target.txt").write_text("2\n")
    done = run_vs_gbdt("--data", str(tmp_path / "data"), "--datasets", "concrete", "--study",
                       str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out"), cwd=tmp_path, expect=2)
    assert "nope.yaml" in done.stderr and "Traceback" not in done.stderr


def test_help():
    assert "--smoke" in run_vs_gbdt("--help", cwd=ROOT).stdout
