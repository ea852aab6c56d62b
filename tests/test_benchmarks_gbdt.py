"""Smoke run of benchmarks/vs_gbdt.py (generated data, 2 trials of 2 epochs): it keeps working; no timing or
quality is asserted."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "vs_gbdt.py"
NUMBER = r"\d+(\.\d+)?"


def run_vs_gbdt(*args: str, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == expect, f"vs_gbdt.py exit {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    tmp = tmp_path_factory.mktemp("gbdt")
    return run_vs_gbdt("--smoke", "--out", str(tmp / "out"), cwd=tmp), tmp / "out"


def test_smoke_writes_table_plot_and_results(smoke):
    done, out = smoke
    assert re.search(rf"^ratio smoke +seed 42 +test RMSE ours/HGB {NUMBER} +ours/HGB\(train\+valid\) {NUMBER}$",
                     done.stdout, re.M), done.stdout
    runs = {r["method"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert sorted(runs) == ["hgb", "ours"]
    ours, hgb = runs["ours"], runs["hgb"]
    assert ours["y_test_digest"] == hgb["y_test_digest"]  # the study split the baseline's rows
    assert ours["n_trials"] == 2 and ours["test_rmse"] > 0 and ours["study_test_rmse"] > 0
    assert ours["test_rmse"] == pytest.approx(ours["study_test_rmse"], rel=1e-4)  # exported model = study's
    assert hgb["test_rmse"] > 0 and hgb["trainvalid_test_rmse"] > 0
    assert (hgb["n_train"], hgb["n_valid"], hgb["n_test"]) == (168, 57, 75)  # 300 rows split 25 % twice
    table = (out / "results.md").read_text()
    row = re.search(rf"^\| smoke \| 300 \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \| 42 \|$",
                    table, re.M)
    assert row, table
    png = (out / "rmse_ratio.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert (out / "smoke-data" / "uci" / "smoke" / "data.txt").is_file()  # generated under the output folder


def test_report_rebuilds_from_results(smoke):
    _, out = smoke
    (out / "results.md").unlink()
    done = run_vs_gbdt("--report", str(out), cwd=out)
    assert re.search(rf"^median smoke +ours {NUMBER} +HGB {NUMBER} +ratio {NUMBER}", done.stdout, re.M)
    assert (out / "results.md").read_text().startswith("| data set | rows |")


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
