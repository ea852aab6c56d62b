"""Acceptance: every shipped table tunes through the CLI, and its export predicts on raw rows read straight
from the file (with a missing value and an unseen category injected), both through ``load_model`` and
through the MLflow model in a fresh process. Hostile files get exit 2 and a message naming the key."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests import warm_python
from tests.helpers import no_pictures, tracking_uri
from tuning.cli.run import main
from tuning.export.files import load_model
from tuning.report import html as report_html

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNING_SHARED_DATA", ROOT.parent / "shared" / "data"))
if not DATA.is_dir():
    pytest.skip(f"shared data folder not found: {DATA} (set TUNING_SHARED_DATA)", allow_module_level=True)

UNSEEN = "never-seen-in-training"


def _uci(name: str, max_rows: int = 400) -> dict:
    folder = DATA / "uci" / name
    target = int((folder / "index_target.txt").read_text().split()[0])
    return {"source": "csv", "path": str(folder / "data.txt"), "sep": "whitespace", "header": False,
            "target": target, "max_rows": max_rows}


def _read_uci(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / "uci" / name / "data.txt", sep=r"\s+", header=None)


def _read_arff(name: str) -> pd.DataFrame:
    from scipy.io import arff

    frame = pd.DataFrame(arff.loadarff(str(DATA / "tabular" / name))[0])
    return frame.apply(lambda c: c.str.decode("utf-8") if c.dtype == object else c)


def _read_mnist() -> np.ndarray:
    from tuning.data.readers import read_idx

    images = read_idx(DATA / "mnist" / "t10k-images-idx3-ubyte.gz")[:20]
    return images.reshape(len(images), -1).astype(np.float64) / 255.0  # the loader's pixel scale


# name -> (dataset section, raw rows as read from the shipped file)
CASES = {
    "kin8nm": (_uci("kin8nm"), lambda: _read_uci("kin8nm")),
    "power-plant": (_uci("power-plant"), lambda: _read_uci("power-plant")),
    "concrete": (_uci("concrete"), lambda: _read_uci("concrete")),
    "protein": (_uci("protein-tertiary-structure", 500), lambda: _read_uci("protein-tertiary-structure")),
    "cereal": ({"source": "csv", "path": str(DATA / "tabular" / "cereal.csv"), "target": "calories"},
               lambda: pd.read_csv(DATA / "tabular" / "cereal.csv")),
    "credit-g": ({"source": "arff", "path": str(DATA / "tabular" / "credit-g.arff"), "target": "Customer",
                  "max_rows": 500}, lambda: _read_arff("credit-g.arff")),
    "ionosphere": ({"source": "arff", "path": str(DATA / "tabular" / "ionosphere.arff"), "target": "Class"},
                   lambda: _read_arff("ionosphere.arff")),
    "fashion-mnist-csv": ({"source": "csv", "path": str(DATA / "fashion_mnist" / "fashion_mnist_kaggle_csv_1000rows.csv"),
                           "target": "label", "max_rows": 400},
                          lambda: pd.read_csv(DATA / "fashion_mnist" / "fashion_mnist_kaggle_csv_1000rows.csv")),
    "mnist-idx": ({"source": "mnist", "path": str(DATA / "mnist"), "max_rows": 400}, _read_mnist),
}
SPACE = {
    "n_hidden": {"type": "int", "low": 1, "high": 1},
    "n_neurons": {"type": "int", "low": 8, "high": 16},
    "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
}


def study_file(tmp_path: Path, name: str, dataset: dict, **extra) -> Path:
    # the schema's defaults where a key is left out (the table recipe on real tables: benchmarks/minimal.py,
    # and tests/test_recipe.py end to end)
    study = {"name": name, "dataset": dataset, "recipe": "plain", "space": SPACE, "model": {"optimizer": "adam"},
             "search": {"n_trials": 2, "seed": 0, "pruner": "none"},
             "training": {"epochs": 2, "batch_size": 64, "early_stopping": {"patience": 1}},
             "mlflow": {"tracking_uri": tracking_uri(tmp_path)}, "export": {"dir": str(tmp_path / "out")}, **extra}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def inject(raw):
    """A few raw rows with a missing value (in an integer column when there is one: pandas then reads it as
    float64) and an unseen category (plus a missing one) in a text column."""
    if isinstance(raw, np.ndarray):
        rows = raw[:8].copy()
        rows[0, 100] = np.nan
        return rows
    rows = raw.head(8).copy()
    numeric = [c for c in rows.columns if pd.api.types.is_numeric_dtype(rows[c])]
    ints = [c for c in numeric if pd.api.types.is_integer_dtype(rows[c])]
    column = (ints or numeric)[-1]
    rows[column] = rows[column].astype(np.float64)
    rows.loc[0, column] = np.nan
    text = [c for c in rows.columns if not pd.api.types.is_numeric_dtype(rows[c])]
    for c in text[:3]:
        rows[c] = rows[c].astype(object)
        rows.loc[1, c] = UNSEEN
        rows.loc[2, c] = np.nan
    return rows


RESULTS: dict[str, dict] = {}


def run_case(name: str, tmp_path: Path, capsys) -> dict:
    """The study of one table through the command (``tuning.run``'s ``main``, in this process: the fresh
    process is the MLflow model's, below), once per module; the report without its charts."""
    if name not in RESULTS:
        dataset, read = CASES[name]
        path = study_file(tmp_path, name, dataset)
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(tmp_path)  # MLflow's artifact store lands there
            patch.setattr(report_html, "write_pictures", no_pictures)  # charts: tested in test_report
            code = main([str(path), "--quiet"])
        err = capsys.readouterr().err
        rows = inject(read())
        rows_file = tmp_path / "rows.pkl"
        pd.to_pickle(rows, rows_file)
        RESULTS[name] = {"code": code, "err": err, "export": tmp_path / "out", "rows": rows, "rows_file": rows_file,
                         "uri": tracking_uri(tmp_path)}
    return RESULTS[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_shipped_table_tunes_and_its_export_predicts_raw_rows(name, tmp_path, capsys):
    result = run_case(name, tmp_path, capsys)
    assert result["code"] == 0, result["err"][-3000:]
    metrics = json.loads((result["export"] / "metrics.json").read_text())
    from mlflow import MlflowClient

    client = MlflowClient(result["uri"])
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id],
                              "tags.`tuning.role` = 'trial'")
    print(f"\n[acceptance] {name}: exit {result['code']}, trials {len(runs)}, test {metrics['test']}")
    assert len(runs) == 2
    rows = result["rows"]
    predictions = load_model(result["export"]).predict(rows)
    assert len(predictions) == len(rows)
    task = json.loads((result["export"] / "best_params.json").read_text())["metric"]
    if task in ("mse", "rmse", "mae", "r2"):
        assert np.all(np.isfinite(np.asarray(predictions, dtype=float)))
    else:
        labels = set(np.asarray(load_model(result["export"]).classes_).tolist())
        assert set(np.asarray(predictions).tolist()) <= labels
    result["predictions"] = predictions


_PYFUNC = """
import json, sys
import numpy as np, pandas as pd, mlflow
from mlflow import MlflowClient
answers = {}
for uri, name, rows_file in json.loads(sys.argv[1]):
    mlflow.set_tracking_uri(uri)  # the model URI (models:/m-...) is resolved against it
    client = MlflowClient(uri)
    parent = client.search_runs([client.get_experiment_by_name(name).experiment_id], "tags.`tuning.role` = 'study'")[0]
    model = mlflow.pyfunc.load_model(parent.data.tags["model.uri"])
    names = [c.name for c in model.metadata.signature.inputs.inputs]
    rows = pd.read_pickle(rows_file)
    out = model.predict(rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=names))
    answers[name] = {"predictions": np.asarray(out).tolist(), "names": names}
print(json.dumps(answers))
"""


def test_mlflow_models_predict_raw_rows_in_a_fresh_process(tmp_path_factory, capsys):
    """All the studies' MLflow models, loaded with ``mlflow.pyfunc`` in one new process (start-up costs)."""
    results = {name: run_case(name, tmp_path_factory.mktemp(name), capsys) for name in sorted(CASES)}
    failed = [name for name, r in results.items() if r["code"] != 0]
    assert not failed, f"studies failed: {failed}"
    jobs = [(r["uri"], name, str(r["rows_file"])) for name, r in results.items()]
    done = warm_python.run([sys.executable, "-c", _PYFUNC, json.dumps(jobs)], capture_output=True, text=True,
                           timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    for name, result in results.items():
        rows = result["rows"]
        if isinstance(rows, pd.DataFrame):  # the signature lists the original columns by name
            assert set(answers[name]["names"]) <= set(rows.columns), name
        expected = np.asarray(load_model(result["export"]).predict(rows))
        got = np.asarray(answers[name]["predictions"])
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=name)
        else:
            assert [str(v) for v in got] == [str(v) for v in expected], name


def test_housing_export_predicts_on_the_frame_and_on_float64_arrays(tmp_path, monkeypatch):
    monkeypatch.setattr(report_html, "write_pictures", no_pictures)  # charts: tested in test_report
    home = os.environ.get("SCIKIT_LEARN_DATA")
    if not home or not (Path(home).expanduser() / "cal_housing_py3.pkz").is_file():
        pytest.skip("scikit-learn's California housing cache not found (set SCIKIT_LEARN_DATA)")
    from sklearn.datasets import fetch_california_housing

    path = study_file(tmp_path, "housing", {"source": "california_housing", "max_rows": 500})
    assert main([str(path), "--quiet"]) == 0
    model = load_model(tmp_path / "out")
    frame = fetch_california_housing(as_frame=True).data.head(20)
    from_frame = model.predict(frame)
    np.testing.assert_allclose(model.predict(frame.to_numpy(dtype=np.float64)), from_frame, rtol=1e-6)
    np.testing.assert_allclose(model.predict(frame[frame.columns[::-1]]), from_frame, rtol=1e-6)  # by name
    assert np.all(np.isfinite(from_frame))


# ------------------------------------------------------------------------------------------ hostile files


def _hostile(tmp_path: Path, frame: pd.DataFrame, target: str, capsys) -> tuple[int, str]:
    csv = tmp_path / "table.csv"
    frame.to_csv(csv, index=False)
    path = study_file(tmp_path, "hostile", {"source": "csv", "path": str(csv), "target": target})
    code = main([str(path), "--quiet"])
    return code, " ".join(capsys.readouterr().err.split())  # the console wraps long lines


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n), "colour": rng.choice(["red", "blue"], size=n),
                         "price": rng.normal(10, 2, size=n), "kind": rng.choice(["a", "b", "c"], size=n)})


def test_misspelled_target_suggests_the_column(tmp_path, capsys):
    code, err = _hostile(tmp_path, _frame(), "prize", capsys)
    assert code == 2 and "dataset.target" in err and "did you mean 'price'" in err and "Traceback" not in err


def test_five_rows_are_refused_before_training(tmp_path, capsys):
    code, err = _hostile(tmp_path, _frame(5), "price", capsys)
    assert code == 2 and "only 5 rows" in err and "training" in err
    assert not (tmp_path / "out" / "pipeline.joblib").exists()


@pytest.mark.parametrize("task", ["regression", "binary"])
def test_constant_target_is_refused(tmp_path, capsys, task):
    frame = _frame().assign(price=3.0 if task == "regression" else "yes")
    code, err = _hostile(tmp_path, frame, "price", capsys)
    assert code == 2 and "dataset.target" in err and "same value" in err


def test_a_class_with_one_row_is_refused_at_the_split(tmp_path, capsys):
    frame = _frame()
    frame.loc[7, "kind"] = "lonely"
    code, err = _hostile(tmp_path, frame, "kind", capsys)
    assert code == 2 and "'lonely' (1 row)" in err and "training" in err


def test_error_text_keeps_its_brackets(tmp_path, capsys):
    code, err = _hostile(tmp_path, _frame(), "[nope]", capsys)  # rich would take [nope] for markup
    assert code == 2 and "column '[nope]' not found" in err
