"""The shipped housing study as a user runs it, made tiny: every process it starts (the ``--workers`` helper,
joblib's retraining workers) starts TensorFlow without a C++ line on stderr, the export directory holds
what a user keeps (no worker study file, no SQLite write-ahead-log files), and nothing lands in the
directory the run was started from (MLflow's artifacts go beside its database)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import tracking_uri

ROOT = Path(__file__).resolve().parents[1]
# A TensorFlow C++ log line (``E0000 00:00:1796117025.834186   20784 cuda_platform.cc:52] ...``) or its notes.
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:|cuda|cuInit|oneDNN|absl::|TF_ENABLE_ONEDNN_OPTS", re.M | re.I)


def test_the_housing_study_with_workers_and_retraining_is_silent_and_leaves_a_clean_export(tmp_path):
    study = yaml.safe_load((ROOT / "studies" / "housing.yaml").read_text())
    study["dataset"] = {"source": "diabetes", "test_size": 0.2, "valid_size": 0.25, "seed": 0}
    study["search"].update(n_trials=4, workers=2)  # a helper process runs trials too
    study["training"].update(epochs=2)
    # members trained again on training + validation rows, in 2 joblib processes (the study's workers)
    study["export"] = {"dir": str(tmp_path / "out"), "train_on": "train+valid",
                       "ensemble": {"method": "top_k", "size": 2}}
    (tmp_path / "store").mkdir()
    study["mlflow"] = {"tracking_uri": tracking_uri(tmp_path / "store")}
    path = tmp_path / "housing.yaml"
    path.write_text(yaml.safe_dump(study))
    # as a user runs it: nothing exported that would quiet TensorFlow
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "TUNING_QUIET_TF_START")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "tuning.run", str(path)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=elsewhere)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not TF_LOG_LINE.search(done.stderr), done.stderr[-3000:]
    assert not TF_LOG_LINE.search(done.stdout), done.stdout[-3000:]
    assert "ensemble" in done.stdout  # the run did export an ensemble (the retraining ran)
    # MLflow's artifacts beside its database, not in the directory the run started in
    assert list(elsewhere.iterdir()) == [] and (tmp_path / "store" / "mlruns" / "housing").is_dir()
    out = tmp_path / "out"
    kept = sorted(p.name for p in out.iterdir())
    members = [name for name in kept if re.fullmatch(r"model_\d+\.keras", name)]
    assert members and kept == sorted(["best_params.json", "metrics.json", "optuna.db", "pipeline.joblib",
                                       "preprocessing.joblib", "report", *members]), kept
