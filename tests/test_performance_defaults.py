"""Settings behind the benchmark numbers: quantile scaling, pruning-step reports, the default housing study."""

from pathlib import Path

import numpy as np
import pytest

from tuning.config.schema import StudyConfigError, load_study, load_study_dict
from tuning.search.store.sampling import pruning_steps
from tuning.search.trial.runner import make_scaler

ROOT = Path(__file__).resolve().parents[1]


def _study(scaling):
    return {"name": "s", "dataset": {"source": "diabetes"}, "preprocessing": {"scaling": scaling},
            "space": {"n_hidden": {"type": "int", "low": 1, "high": 2}}}


def test_quantile_is_accepted():
    assert load_study_dict(_study("quantile")).preprocessing.scaling == "quantile"


def test_unknown_scaling_is_refused():
    with pytest.raises(StudyConfigError, match="preprocessing.scaling"):
        load_study_dict(_study("quantiles"))


def test_quantile_scaler_bounds_outliers_and_keeps_float32():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3)).astype("float32")
    X[0, 0] = 500.0  # one row hundreds of standard deviations out, as in California housing
    scaler = make_scaler("quantile").fit(X)
    Z = scaler.transform(np.vstack([X, [[1e4, 0.0, 0.0]]]).astype("float32"))
    assert Z.dtype == np.float32
    assert np.abs(Z).max() < 6  # a normal law's quantiles: no extrapolation far outside the training range
    assert abs(float(np.median(Z[:, 1]))) < 0.1


def test_default_housing_study():
    cfg = load_study(ROOT / "studies" / "housing.yaml")
    assert cfg.preprocessing.scaling == "quantile"
    assert cfg.model.optimizer == "adam"
    assert cfg.search.sampler == "tpe" and cfg.search.pruner == "hyperband" and cfg.search.cv == "validation"
    assert (cfg.dataset.test_size, cfg.dataset.valid_size, cfg.dataset.seed) == (0.25, 0.25, 42)
    # the quality levers (benchmarks/levers.py) are on in the default study, off in the estimators
    assert cfg.model.numeric_embedding == "periodic" and cfg.export.ensemble.enabled
    assert cfg.export.train_on == "train+valid" and cfg.search.workers == 2
    plain = load_study(ROOT / "studies" / "housing_plain.yaml")
    assert plain.model.numeric_embedding is None and not plain.export.ensemble.enabled


@pytest.mark.parametrize(("pruner", "epochs", "expected"), [
    ("hyperband", 100, {5, 15, 45}),
    ("successive_halving", 100, {5, 15, 45}),
    ("hyperband", 10, {1, 3, 9}),
    ("none", 100, set()),
    ("median", 100, None),
])
def test_pruning_steps_are_the_rungs(pruner, epochs, expected):
    data = {**_study("standard"), "search": {"pruner": pruner}, "training": {"epochs": epochs}}
    steps = pruning_steps(load_study_dict(data))
    assert (None if steps is None else set(steps)) == expected


def _python(code: str, env: dict[str, str]) -> list[str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _env_without(*names: str) -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in names}


@pytest.mark.parametrize("exported, expected", [(None, "0"), ("1", "1")])
def test_a_study_process_turns_onednn_off_unless_exported(exported, expected):
    # oneDNN's caches grew with every trial (benchmarks/memory.py); TensorFlow reads the variable once.
    env = _env_without("TF_ENABLE_ONEDNN_OPTS")
    if exported is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = exported
    code = ("import os, sys, tuning; tuning.configure_study_process(); "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], 'tensorflow' in sys.modules)")
    assert _python(code, env) == [expected, "False"]


_IMPORT_PROBE = """
import atexit, gc, os, sys, warnings
before_env, before_filters = dict(os.environ), list(warnings.filters)
ours = []
register = atexit.register
atexit.register = lambda f, *a, **k: (ours.append(f) if (getattr(f, "__module__", None) or "").startswith("tuning") else None,
                                      register(f, *a, **k))[1]
import {modules}
import optuna
added = [f for f in warnings.filters if f not in before_filters
         and (f[2] is optuna.exceptions.ExperimentalWarning or "pickle" in str(f[1]))]
print("TF_ENABLE_ONEDNN_OPTS" in os.environ, "TF_CPP_MIN_LOG_LEVEL" in os.environ, ours == [], added == [],
      optuna.logging.get_verbosity() == optuna.logging.INFO, gc.get_freeze_count() == 0)
"""


def test_importing_the_library_leaves_the_process_alone():
    """No environment variable, exit hook, log level, warning filter or frozen heap from our imports."""
    env = _env_without("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")
    code = _IMPORT_PROBE.format(modules="tuning, tuning.config.schema, tuning.parallel.process, tuning.config.overrides, tuning.study, "
                                        "tuning.tracking.tracker, tuning.search.trial.runner, tuning.report, tuning.run")
    assert _python(code, env) == ["False"] * 2 + ["True"] * 4


def test_configure_study_process_applies_the_settings():
    env = _env_without("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")
    code = ("import optuna, os, tuning.parallel.process as p; p.configure_study_process(); p.freeze_heap_once(); "
            "import gc; print(os.environ['TF_ENABLE_ONEDNN_OPTS'], optuna.logging.get_verbosity() == optuna.logging.ERROR, "
            "gc.get_freeze_count() > 0)")
    assert _python(code, env) == ["0", "True", "True"]


_DIVERGE = """
import contextlib, io, json
import numpy as np
from estimators import KerasMLPRegressor
from tuning.parallel.process import configure_study_process

def diverge():
    out = io.StringIO()
    X = np.ones((64, 2)) * 1e3
    est = KerasMLPRegressor(learning_rate=1e6, epochs=3, batch_size=8, validation_fraction=None, random_state=0)
    with contextlib.redirect_stdout(out):
        est.fit(X, X[:, 0] * 1e3)
    return {"diverged": bool(est.diverged_), "stdout": out.getvalue()}

plain = diverge()
configure_study_process(start_tensorflow=True)
print(json.dumps({"plain": plain, "study": diverge()}))
"""


def test_a_diverging_fit_prints_nothing_in_any_process():
    """Keras' TerminateOnNaN would print "Batch 3: Invalid loss" on stdout in a plain process: the estimators
    stop a diverging fit silently, in a plain process and in a study process alike."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _DIVERGE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["plain"]["diverged"] and seen["study"]["diverged"]
    assert seen["plain"]["stdout"] == "" and seen["study"]["stdout"] == ""
