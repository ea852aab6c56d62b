"""``python -m tuning.predict``: raw CSV/Parquet rows in, the rows plus predictions out; clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests import warm_python
from tuning.cli.predict import main
from tuning.config.schema import PreprocessingConfig
from tuning.data.preprocessing import build_preprocessor
from tuning.export.files import export_model, make_pipeline


def table(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"size": rng.normal(size=n), "colour": rng.choice(["red", "blue"], size=n),
                         "rooms": rng.integers(1, 6, size=n), "kind": rng.choice(["cat", "dog"], size=n)})


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    from estimators import KerasMLPClassifier

    data = table()
    features = data.drop(columns=["kind"])
    pre, _ = build_preprocessor(features, PreprocessingConfig())
    X = pre.fit_transform(features)
    model = KerasMLPClassifier(n_hidden=1, n_neurons=4, epochs=2, random_state=0, validation_fraction=None)
    model.fit(X, data["kind"].to_numpy())
    out = tmp_path_factory.mktemp("export")
    export_model(make_pipeline(pre, model), out, {"trial": 0}, {"test": {}})
    return out, data


def test_predict_writes_the_rows_with_predictions_and_probabilities(exported, tmp_path):
    out_dir, data = exported
    rows = data.head(6).copy()
    rows["rooms"] = rows["rooms"].astype(float)
    rows.loc[0, "rooms"] = np.nan
    rows.loc[1, "colour"] = "green"  # unseen
    source = tmp_path / "rows.csv"
    rows.to_csv(source, index=False)
    target = tmp_path / "pred.csv"
    done = warm_python.run([sys.executable, "-m", "tuning.predict", str(out_dir), str(source), "-o", str(target),
                            "--proba"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = pd.read_csv(target)
    assert list(result.columns) == [*rows.columns, "prediction", "proba_cat", "proba_dog"]
    assert set(result["prediction"]) <= {"cat", "dog"}
    np.testing.assert_allclose(result["proba_cat"] + result["proba_dog"], 1.0, rtol=1e-5)
    winner = np.where(result["proba_dog"] > result["proba_cat"], "dog", "cat")
    assert list(winner) == list(result["prediction"])


def test_parquet_in_and_out(exported, tmp_path, capsys):
    out_dir, data = exported
    source = tmp_path / "rows.parquet"
    data.head(4).to_parquet(source)
    assert main([str(out_dir), str(source), "-o", str(tmp_path / "p.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "p.parquet")["prediction"]) == 4


def test_missing_column_exits_2(exported, tmp_path, capsys):
    out_dir, data = exported
    source = tmp_path / "rows.csv"
    data.drop(columns=["colour"]).head(3).to_csv(source, index=False)
    assert main([str(out_dir), str(source)]) == 2
    err = capsys.readouterr().err
    assert "colour" in err and "lacks 1 feature column" in err and "Traceback" not in err


def test_unreadable_input_and_unknown_model_exit_2(exported, tmp_path, capsys):
    out_dir, _ = exported
    assert main([str(out_dir), str(tmp_path / "none.csv")]) == 2
    assert "input file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    assert main([str(out_dir), str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err
    source = tmp_path / "rows.csv"
    table().head(2).to_csv(source, index=False)
    assert main([str(tmp_path), str(source)]) == 2
    assert "neither an export directory" in capsys.readouterr().err


def test_proba_on_a_regressor_exits_2(tmp_path, capsys):
    from estimators import KerasMLPRegressor

    data = table()
    features = data.drop(columns=["kind", "size"])
    pre, _ = build_preprocessor(features, PreprocessingConfig())
    model = KerasMLPRegressor(n_hidden=0, epochs=1, random_state=0, validation_fraction=None)
    model.fit(pre.fit_transform(features), data["size"].to_numpy(np.float32))
    export_model(make_pipeline(pre, model), tmp_path / "reg", {}, {})
    source = tmp_path / "rows.csv"
    data.head(3).to_csv(source, index=False)
    assert main([str(tmp_path / "reg"), str(source), "--proba"]) == 2
    assert "regressor" in capsys.readouterr().err
