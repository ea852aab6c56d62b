"""Smoke run of benchmarks/stacked.py (diabetes, a few 2-epoch trials, stack 1 and 2, each in its own
process): it keeps working, records one result per (stack, seed) and tabulates their medians; no timing or
quality is asserted. A study that cannot stack is refused before any child process starts."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests import warm_python
from tuning.config.schema import DatasetConfig
from tuning.data.sources import load_dataset

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "stacked.py"


def run_bench(*args: str, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = warm_python.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=600)
    assert done.returncode == expect, f"stacked.py exit {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def table_rows(table: str) -> dict[tuple[str, str], list[str]]:
    """The results table's rows by (stack, variant)."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
            if line.startswith("|") and line[1:].strip()[:1].isdigit()]
    return {(cells[0], cells[1]): cells for cells in rows}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run (3 trials instead of the smoke's 4) of stack 1 and of stack 2 in the pad and idle
    variants: its folder and output."""
    tmp = tmp_path_factory.mktemp("stacked")
    done = run_bench("--smoke", "--trials", "3", "--variants", "pad", "idle", "--out", str(tmp / "out"), cwd=tmp)
    return tmp / "out", done


def test_smoke_records_both_stack_sizes_and_the_variants_and_tabulates_them(smoke, tmp_path):
    out, done = smoke
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["stack"], r["variant"], r["seed"]) for r in results) == [(1, "pad", 42), (2, "idle", 42),
                                                                               (2, "pad", 42)]
    for r in results:
        assert r["smoke"] and r["n_trials"] == 3 and r["test_mse"] > 0 and r["trials_per_min"] > 0
    table = (out / "results.md").read_text()
    rows = table_rows(table)
    assert sorted(rows) == [("1", "–"), ("2", "idle"), ("2", "pad")]
    for r in results:
        cells = rows[str(r["stack"]), "–" if r["stack"] == 1 else r["variant"]]
        assert float(cells[4]) == pytest.approx(r["search_trials_per_min"], abs=0.01)
        assert float(cells[6]) == pytest.approx(r["test_mse"], rel=1e-3)
    assert "SMOKE RUN" in table and "median stack 2 idle" in done.stdout
    again = run_bench("--report", str(out), cwd=tmp_path)
    assert "median stack 1" in again.stdout


def test_a_study_that_cannot_stack_is_refused_before_any_run(tmp_path):
    study = yaml.safe_load((ROOT / "studies" / "housing_plain.yaml").read_text())
    study["model"]["optimizer"] = "sgd"
    path = tmp_path / "sgd.yaml"
    path.write_text(yaml.safe_dump(study))
    done = run_bench("--study", str(path), "--stacks", "1", "4", "--out", str(tmp_path / "out"), cwd=tmp_path,
                     expect=2)
    assert "search.stack" in done.stderr and not (tmp_path / "out" / "results.jsonl").exists()


def test_trials_and_timeout_replace_the_studys(monkeypatch):
    """``--trials`` / ``--timeout`` (for stacks in the hundreds, and a fixed time per run) set every run's
    ``search.n_trials`` / ``search.timeout``; without them the study file's values hold."""
    stacked = load_script("stacked", monkeypatch)
    study = ROOT / "studies" / "housing_plain.yaml"
    config = stacked.make_config(study, 256, False, n_trials=2000, timeout=300)
    assert (config.search.stack, config.search.n_trials, config.search.timeout) == (256, 2000, 300)
    plain = stacked.make_config(study, 4, False)
    assert (plain.search.n_trials, plain.search.timeout) == (30, yaml.safe_load(study.read_text())["search"].get("timeout"))


def load_script(name: str, monkeypatch):
    """A benchmark script as a module (the benchmarks folder on the path for its ``_common``)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ceiling_counts_each_runs_trials_epochs_and_work_from_its_mlflow_store(smoke, monkeypatch, capsys):
    """benchmarks/stacked_ceiling.py on the smoke runs: one row per run with the trials, the member-epochs
    MLflow holds for it and the dense layers' work of those epochs; stack 1 gets a ceiling."""
    out, _ = smoke
    ceiling = load_script("stacked_ceiling", monkeypatch)
    assert ceiling.main([str(out), "--smoke"]) == 0
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.startswith("stack")}
    split = load_dataset(DatasetConfig(source="diabetes"))  # the smoke runs' data, the schema's split
    n_train, n_valid, n_inputs = len(split.X_train), len(split.X_valid), split.X_train.shape[1]
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == len(results) == 3
    for r in results:
        label = f"stack{r['stack']}-{r['variant']}-seed{r['seed']}"
        client = MlflowClient(tracking_uri=f"sqlite:///{out / 'runs' / label / 'mlflow.db'}")
        trials = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                    filter_string="tags.`tuning.role` = 'trial'")
        epochs = [int(t.data.metrics["epochs_run"]) for t in trials]
        flop = sum(int(t.data.metrics["epochs_run"]) * (3 * n_train + n_valid) * 2
                   * (n_inputs * w + (h - 1) * w * w + w)
                   for t in trials for h, w in [(int(t.data.params["n_hidden"]), int(t.data.params["n_neurons"]))])
        cells = rows[label]
        assert int(cells[1]) == r["n_trials"] == len(trials) and int(cells[2]) == sum(epochs) > 0
        assert float(cells[3]) == pytest.approx(flop / 1e9, abs=0.06)
        assert cells[-1].endswith("x") == (r["stack"] == 1)


def test_a_worker_writes_where_the_launcher_was_started(tmp_path, monkeypatch):
    """A relative ``--out`` means the launcher's directory to its workers, in a child process (a real run)
    and in this process (a smoke run), wherever the repository is."""
    script = tmp_path / "writes_out.py"
    script.write_text("import sys\nfrom pathlib import Path\n\n\ndef main(argv):\n"
                      "    out = Path(argv[argv.index('--out') + 1])\n    out.mkdir()\n"
                      "    (out / 'done').write_text('ok')\n\n\n"
                      "if __name__ == '__main__':\n    sys.exit(main(sys.argv[1:]))\n")
    common = load_script("_common", monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert common.run_worker(str(script), ["--out", "child"], "child") == 0
    assert common.run_worker(str(script), ["--smoke", "--out", "inside"], "in process") == 0
    assert (elsewhere / "child" / "done").is_file() and (elsewhere / "inside" / "done").is_file()
