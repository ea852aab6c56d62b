"""Shipped code is checked before it is imported: an export (or a logged MLflow model) whose factory file changed
after the export is refused by ``load_model`` and by ``python -m tuning.predict`` (exit 2, one line naming the
file), an untampered one loads, and a ``code.json`` entry without a sha256 is refused."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import log_model_in_a_run, tracking_uri
from tuning.cli.predict import main as predict
from tuning.export.files import load_model, save_model
from tuning.export.shipped_code import CODE_FILE, ShippedCodeError

FACTORY = """
import keras

def build_model(n_units=3, input_shape=(4,)):
    return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Dense(n_units), keras.layers.Dense(1)])
"""


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A fitted pipeline of a file factory (module ``checked_factory``), its rows and what it predicts."""
    from sklearn.preprocessing import StandardScaler

    from estimators import KerasModelRegressor
    from tuning.export.files import make_pipeline

    tmp = tmp_path_factory.mktemp("checked")
    (tmp / "checked_factory.py").write_text(textwrap.dedent(FACTORY))
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(rng.normal(size=(40, 4)), columns=list("abcd"))
    scaler = StandardScaler().fit(rows)
    pipeline = make_pipeline(scaler, KerasModelRegressor(
        build=f"{tmp / 'checked_factory.py'}:build_model", epochs=1, early_stopping=False, validation_fraction=0.0,
        random_state=0).fit(scaler.transform(rows), rows["a"].to_numpy()))
    rows.head(5).to_csv(tmp / "rows.csv", index=False)
    return {"tmp": tmp, "pipeline": pipeline, "rows": rows.head(5), "expected": pipeline.predict(rows.head(5))}


def _export(fitted, name: str) -> Path:
    return save_model(fitted["pipeline"], fitted["tmp"] / name)


def test_an_untampered_export_loads_and_predicts(fitted):
    out = _export(fitted, "clean")
    entry = json.loads((out / CODE_FILE).read_text())["modules"][0]
    assert entry["file"] == "code/checked_factory.py" and len(entry["sha256"]) == 64
    np.testing.assert_allclose(load_model(out).predict(fitted["rows"]), fitted["expected"])


def test_a_changed_shipped_file_is_refused_naming_it(fitted, capsys):
    out = _export(fitted, "tampered")
    with (out / "code" / "checked_factory.py").open("a") as file:
        file.write("print('not what was exported')\n")
    with pytest.raises(ShippedCodeError, match=r"code/checked_factory\.py changed since the export"):
        load_model(out)
    assert predict([str(out), str(fitted["tmp"] / "rows.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "checked_factory.py changed" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_an_entry_without_a_sha256_is_refused(fitted):
    out = _export(fitted, "unrecorded")
    manifest = json.loads((out / CODE_FILE).read_text())
    del manifest["modules"][0]["sha256"]
    (out / CODE_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ShippedCodeError, match=r"checked_factory\.py: code\.json records no sha256"):
        load_model(out)


def test_the_predict_command_checks_a_logged_mlflow_model(fitted, tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    from tuning.compat.mlflow import global_tracking_uri

    uri = tracking_uri(tmp_path)
    experiment = MlflowClient(uri).create_experiment("checked", artifact_location=(tmp_path / "artifacts").as_uri())
    model_uri = log_model_in_a_run(uri, experiment, fitted["pipeline"], fitted["rows"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # what the command's own process reads
    # MLflow's global URI too: an earlier test of this process may have left it set, and it wins over the variable
    with global_tracking_uri(uri):
        target = tmp_path / "predictions.csv"
        assert predict([model_uri, str(fitted["tmp"] / "rows.csv"), "-o", str(target)]) == 0
        np.testing.assert_allclose(pd.read_csv(target)["prediction"], fitted["expected"])

        shipped = [p for p in (tmp_path / "artifacts").rglob("checked_factory.py") if p.parent.name == "code"]
        assert shipped, "the logged model ships the factory under code/"
        for path in shipped:
            path.write_text(path.read_text() + "# changed\n")
        capsys.readouterr()
        assert predict([model_uri, str(fitted["tmp"] / "rows.csv")]) == 2
        err = capsys.readouterr().err.strip()
        assert "checked_factory.py changed since the export" in err and len(err.splitlines()) == 1
