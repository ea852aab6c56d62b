"""Smoke run of benchmarks/stacked.py (diabetes, a few 2-epoch trials, stack 1 and 2, each in its own
process): it keeps working, records one result per (stack, seed) and tabulates their medians; no timing or
quality is asserted. A study that cannot stack is refused before any child process starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "stacked.py"


def run_bench(*args: str, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == expect, f"stacked.py exit {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def table_rows(table: str) -> dict[tuple[str, str], list[str]]:
    """The results table's rows by (stack, variant)."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
            if line.startswith("|") and line[1:].strip()[:1].isdigit()]
    return {(cells[0], cells[1]): cells for cells in rows}


def test_smoke_records_both_stack_sizes_and_the_variants_and_tabulates_them(tmp_path):
    done = run_bench("--smoke", "--variants", "pad", "idle", "--out", str(tmp_path / "out"), cwd=tmp_path)
    results = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sorted((r["stack"], r["variant"], r["seed"]) for r in results) == [(1, "pad", 42), (2, "idle", 42),
                                                                               (2, "pad", 42)]
    for r in results:
        assert r["smoke"] and r["n_trials"] == 4 and r["test_mse"] > 0 and r["trials_per_min"] > 0
    table = (tmp_path / "out" / "results.md").read_text()
    rows = table_rows(table)
    assert sorted(rows) == [("1", "–"), ("2", "idle"), ("2", "pad")]
    for r in results:
        cells = rows[str(r["stack"]), "–" if r["stack"] == 1 else r["variant"]]
        assert float(cells[4]) == pytest.approx(r["search_trials_per_min"], abs=0.01)
        assert float(cells[6]) == pytest.approx(r["test_mse"], rel=1e-3)
    assert "SMOKE RUN" in table and "median stack 2 idle" in done.stdout
    again = run_bench("--report", str(tmp_path / "out"), cwd=tmp_path)
    assert "median stack 1" in again.stdout


def test_a_study_that_cannot_stack_is_refused_before_any_run(tmp_path):
    study = yaml.safe_load((ROOT / "studies" / "housing_plain.yaml").read_text())
    study["model"]["optimizer"] = "sgd"
    path = tmp_path / "sgd.yaml"
    path.write_text(yaml.safe_dump(study))
    done = run_bench("--study", str(path), "--stacks", "1", "4", "--out", str(tmp_path / "out"), cwd=tmp_path,
                     expect=2)
    assert "search.stack" in done.stderr and not (tmp_path / "out" / "results.jsonl").exists()
