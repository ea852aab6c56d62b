"""Every number a study shows is the metric itself: for every metric of the schema and every kind of model
(our MLP, a user's factory compiled with a loss unrelated to the metric and no ``metrics=``, a KerasTuner
hypermodel, stacked trials, cross-validated trials), each trial's value, pruned or complete, is the metric
recomputed here with scikit-learn from that trial's model on the validation rows at the epoch it reported,
and it is the same in the study store, MLflow (the objective and the last point of the ``valid_<metric>``
curve) and the report.

The models are watched from outside: a Keras callback put first into each lone fit (and a wrapper of the
stack's epoch) records what the estimator's own ``predict`` / ``predict_proba`` say on the validation rows
after every epoch; the metrics are scikit-learn's, called here.
"""

from __future__ import annotations

import re
import textwrap
from types import SimpleNamespace

import keras
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.model_selection import check_cv

import tuning.report.html as report_html
import tuning.search.schedulers.stacking as stacking
import tuning.search.store.optuna as optuna_store
from tests.helpers import no_pictures, study_dict
from tuning.config.schema import CLASSIFICATION_METRICS, REGRESSION_METRICS, load_study_dict
from tuning.records import COMPLETE, PRUNED
from tuning.search.trial.runner import TrialRunner
from tuning.study import run_study
from tuning.tracking import runlayout as layout

KINDS = ("mlp", "factory", "hypermodel", "stacked", "cv")
PRUNED_TRIAL, PRUNED_AT = 1, 2  # trial 1 is pruned when it reports its 2nd epoch; trial 0 completes
EPOCHS = 3


def sklearn_metric(metric: str, y, predictions, probabilities, classes) -> float:
    """The metric, by scikit-learn, of what the estimator predicted."""
    if metric == "log_loss":
        return skm.log_loss(y, probabilities, labels=classes)
    if metric == "roc_auc":
        return skm.roc_auc_score(y, probabilities[:, 1])
    fn = {"mse": skm.mean_squared_error, "rmse": skm.root_mean_squared_error, "mae": skm.mean_absolute_error,
          "r2": skm.r2_score, "accuracy": skm.accuracy_score}[metric]
    return fn(y, predictions)


class PruneOne(optuna.pruners.BasePruner):
    """Prunes trial ``PRUNED_TRIAL`` at step ``PRUNED_AT``; never another."""

    def prune(self, study, trial) -> bool:
        return trial.number == PRUNED_TRIAL and max(trial.intermediate_values, default=0) >= PRUNED_AT


class Watch(keras.callbacks.Callback):
    """After every epoch: what the fitting estimator predicts on the validation rows, by trial and epoch."""

    def __init__(self, seen: dict, number: int, estimator, X, classifier: bool) -> None:
        super().__init__()
        self.seen, self.number, self.estimator, self.X, self.classifier = seen, number, estimator, X, classifier

    def on_epoch_end(self, epoch, logs=None):
        est = self.estimator
        self.seen[self.number, epoch] = (est.predict(self.X), est.predict_proba(self.X) if self.classifier else None)


class Observer:
    """Hands the test the study's runner (``run_study(observers=...)``)."""

    portable = False
    runner: TrialRunner | None = None

    def __init__(self, stacked: bool = False) -> None:
        self.stacked = stacked  # the stack's members are watched by epoch, not by fit

    def attach(self, runner):
        self.runner = runner

    def on_trial_start(self, number, params):
        pass

    def on_trial_end(self, record):
        pass


def watched(patch, seen: dict, observer: Observer, fold_models: dict, refits: list) -> None:
    """Every lone fit gets a :class:`Watch` first; the stack's epochs are watched member by member; the
    estimators made after the trials (the export's refits) go to ``refits``."""
    opened = {}  # the trial running now (not the export's refits, after the trials)
    open_trial, close_trial = TrialRunner.open_trial, TrialRunner.close_trial
    make_estimator, after_epoch = TrialRunner.make_estimator, stacking.StackedTrials.after_epoch

    def open_watched(self, number, params, check=True, **kwargs):
        opened["number"] = opened["first"] = number
        return open_trial(self, number, params, check, **kwargs)

    def close_watched(self, record, *args, **kwargs):
        opened.pop("number", None)
        return close_trial(self, record, *args, **kwargs)

    def make_watched(self, params, portable=False):
        est = make_estimator(self, params, portable)
        if "first" in opened and "number" not in opened:
            refits.append(params)  # after the trials: a model the export trains again
        if observer.stacked or "number" not in opened:
            return est
        number, fit, classifier = opened["number"], est.fit, self.task != "regression"

        def fit_watched(X, y, *args, callbacks=None, **kwargs):
            fold_models[number] = est
            watch = Watch(seen, number, est, observer.runner.data.X_valid, classifier)
            try:
                return fit(X, y, *args, callbacks=[watch, *(callbacks or [])], **kwargs)
            finally:
                del est.__dict__["fit"]  # the fitted estimator pickles (the export) as it would unwatched

        object.__setattr__(est, "fit", fit_watched)  # an instance attribute, not a model parameter
        return est

    def after_epoch_watched(self, model):
        d, classifier = self.runner.data, self.runner.task != "regression"
        for slot, member in enumerate(self.slots):
            if member is not None:
                est = clone(member.estimator).adopt(d.X_train, d.y_train, model.member_model(slot), {},
                                                    best_epoch=0)
                seen[member.record.number, member.epoch] = (
                    est.predict(d.X_valid), est.predict_proba(d.X_valid) if classifier else None)
        return after_epoch(self, model)

    patch.setattr(TrialRunner, "open_trial", open_watched)
    patch.setattr(TrialRunner, "close_trial", close_watched)
    patch.setattr(TrialRunner, "make_estimator", make_watched)
    patch.setattr(stacking.StackedTrials, "after_epoch", after_epoch_watched)


def write_data(path, task: str) -> None:
    """A generated table: a regression target far from unit scale (trained standardised), or two classes."""
    from sklearn.datasets import make_classification, make_regression

    if task == "regression":
        X, y = make_regression(n_samples=300, n_features=4, noise=20.0, random_state=0)
        y = 3.0 * y + 200.0
    else:
        X, y = make_classification(n_samples=300, n_features=4, n_informative=3, n_redundant=0, flip_y=0.1,
                                   random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["y"] = y
    frame.to_csv(path, index=False)


# the user's own models: a factory compiled with a loss that is none of the metrics and no metrics= (the
# classifier's outputs are logits, as TensorFlow's tutorials compile it), and a KerasTuner hypermodel
FACTORY = {
    "regression": """
        def build_model(n_neurons=8, learning_rate=0.01, input_shape=None):
            model = keras.Sequential([keras.Input(shape=input_shape), keras.layers.Dense(n_neurons, activation="relu"),
                                      keras.layers.Dense(1)])
            model.compile(loss="huber", optimizer=keras.optimizers.Adam(learning_rate))
            return model
        """,
    "binary": """
        def build_model(n_neurons=8, learning_rate=0.01, input_shape=None):
            model = keras.Sequential([keras.Input(shape=input_shape), keras.layers.Dense(n_neurons, activation="relu"),
                                      keras.layers.Dense(2)])
            model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          optimizer=keras.optimizers.Adam(learning_rate))
            return model
        """,
}
HYPERMODEL = {
    "regression": """
        def build_model(hp):
            model = keras.Sequential([keras.layers.Dense(hp.Int("units", 4, 16), activation="relu"),
                                      keras.layers.Dense(1)])
            model.compile(loss="mae", metrics=["mse"],
                          optimizer=keras.optimizers.Adam(hp.Float("lr", 3e-3, 3e-2, sampling="log")))
            return model
        """,
    "binary": """
        def build_model(hp):
            model = keras.Sequential([keras.layers.Dense(hp.Int("units", 4, 16), activation="relu"),
                                      keras.layers.Dense(2, activation="softmax")])
            model.compile(loss="categorical_crossentropy", metrics=["accuracy"],
                          optimizer=keras.optimizers.Adam(hp.Float("lr", 3e-3, 3e-2, sampling="log")))
            return model
        """,
}
MLP_SPACE = {"n_hidden": {"type": "int", "low": 1, "high": 2}, "n_neurons": {"type": "int", "low": 4, "high": 12},
             "learning_rate": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True}}


def study_settings(kind: str, task: str, root) -> dict:
    if kind in ("factory", "hypermodel"):
        body = (FACTORY if kind == "factory" else HYPERMODEL)[task]
        path = root / f"{root.name.replace('-', '_')}_model.py"  # a module name of its own per factory
        path.write_text("import keras\n" + textwrap.dedent(body))
        space = {} if kind == "hypermodel" else {
            "n_neurons": MLP_SPACE["n_neurons"], "learning_rate": MLP_SPACE["learning_rate"]}
        return {"model": {"build": f"{path}:build_model"}, "space": space}
    if kind == "stacked":  # one depth, widths that pad to 8: both trials in one stack (one XLA compilation)
        return {"space": {**MLP_SPACE, "n_hidden": {"type": "int", "low": 1, "high": 1},
                          "n_neurons": {"type": "int", "low": 5, "high": 8}}, "search": {"stack": 2}}
    return {"space": MLP_SPACE, "search": {"cv": 2} if kind == "cv" else {}}


def run_kind(tmp_path_factory, kind: str, task: str, metrics: frozenset[str]) -> dict:
    """One study per metric: two trials, the second pruned at its 2nd epoch; what was seen of their models."""
    root = tmp_path_factory.mktemp(f"{kind}-{task}")
    data = root / "data.csv"
    write_data(data, task)
    studies = {}
    for metric in sorted(metrics):
        settings = study_settings(kind, task, root)
        seen, fold_models, refits, observer = {}, {}, [], Observer(stacked=kind == "stacked")
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(root)  # MLflow's artifact store lands here
            patch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # slow, tested in test_study
            patch.setattr(report_html, "write_pictures", no_pictures)
            patch.setattr(optuna_store, "make_pruner", lambda config: PruneOne())
            watched(patch, seen, observer, fold_models, refits)
            tmp = root / metric
            tmp.mkdir()
            changes = study_dict(
                tmp, name=f"{kind}-{metric}", dataset={"source": "csv", "path": str(data), "target": "y"},
                model=settings.get("model", {"optimizer": "adam"}), space=settings["space"],
                search={"n_trials": 2, "metric": metric, "sampler": "random", "pruner": "median",
                        **settings.get("search", {})},
                training={"epochs": EPOCHS, "batch_size": 32, "early_stopping": {"patience": 10}},
            )
            if not changes["space"]:  # a hypermodel's space is drawn as it builds
                del changes["space"]
            if "build" in changes["model"]:  # it compiles the model itself
                del changes["model"]["optimizer"]
            config = load_study_dict(changes)
            result = run_study(config, quiet=True, observers=[observer])
        studies[metric] = SimpleNamespace(config=config, result=result, seen=seen, runner=observer.runner,
                                          fold_models=fold_models, refits=refits)
    return studies


@pytest.fixture(scope="module")
def studies(request, tmp_path_factory):
    cache = {}

    def get(kind: str, metric: str) -> SimpleNamespace:
        task = "regression" if metric in REGRESSION_METRICS else "binary"
        if (kind, task) not in cache:
            metrics = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
            cache[kind, task] = run_kind(tmp_path_factory, kind, task, metrics)
        return cache[kind, task][metric]

    return get


def report_value(html: str, number: int) -> str:
    """The objective cell of trial ``number`` in report.html's trials table."""
    found = re.search(rf'<tr class="[^"]*"><td class="num">{number}</td><td>[a-z]+</td><td class="num">([^<]*)</td>', html)
    assert found, f"trial {number} is not in the report's table"
    return found.group(1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("metric", sorted(REGRESSION_METRICS | CLASSIFICATION_METRICS))
def test_every_value_shown_is_the_metric_of_the_trials_model(studies, kind, metric):
    study = studies(kind, metric)
    config, result, runner = study.config, study.result, study.runner
    d = runner.data
    classes = np.unique(np.asarray(d.y_train)) if runner.task != "regression" else None
    records = {r.number: r for r in result.records}
    assert {n: r.state for n, r in records.items()} == {0: COMPLETE, PRUNED_TRIAL: PRUNED}

    def recomputed(number: int, epoch: int) -> float:
        predictions, probabilities = study.seen[number, epoch]
        return sklearn_metric(metric, d.y_valid, predictions, probabilities, classes)

    pruned = records[PRUNED_TRIAL]
    assert pruned.epochs_run == PRUNED_AT
    assert pruned.value == pytest.approx(recomputed(PRUNED_TRIAL, PRUNED_AT - 1), rel=1e-6)

    # the complete trial: its model as it ended (validation rows), or the mean of its folds
    complete = records[0]
    if kind == "cv":
        assert complete.value == pytest.approx(np.mean(complete.fold_scores), rel=1e-12)
        fold = next(check_cv(2, d.y_train, classifier=classes is not None).split(d.X_train, d.y_train))[1]
        model = study.fold_models[0]  # fold 0's, watched as it trained
        X, y = d.X_train[fold], d.y_train[fold]
    else:  # the export reuses the model the keeper holds: nothing is trained again
        model, X, y = runner.keeper.get(0), d.X_valid, d.y_valid
        assert model is not None and study.refits == [] and (config.export_dir / "pipeline.joblib").is_file()
    probabilities = model.predict_proba(X) if classes is not None else None
    first = complete.fold_scores[0]
    assert first == pytest.approx(sklearn_metric(metric, y, model.predict(X), probabilities, classes), rel=1e-6)

    # the same values in the study store, MLflow and the report
    stored = optuna.load_study(study_name=config.name, storage=f"sqlite:///{config.export_dir / 'optuna.db'}")
    client = MlflowClient(config.mlflow.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(config.experiment_name).experiment_id],
                              filter_string=layout.children_filter(result.parent_run_id))
    shown = {r.number: r for r in report_html.load_study_run(client, config, result.parent_run_id).records}
    html = result.report_path.read_text(encoding="utf-8")
    trials = {t.number: t for t in stored.trials}
    for number, record in records.items():
        trial = trials[number]
        assert trial.value == pytest.approx(record.value, rel=1e-12)
        run = next(r for r in runs if layout.trial_number(r) == number)
        assert run.data.metrics[layout.objective_key(metric)] == pytest.approx(record.value, rel=1e-12)
        # the per-epoch curve: the metric of the model after each epoch it ran
        curve = [m.value for m in sorted(client.get_metric_history(run.info.run_id, f"valid_{metric}"),
                                         key=lambda m: m.step)]
        assert len(curve) == record.epochs_run > 0
        for epoch, value in enumerate(curve):
            assert value == pytest.approx(recomputed(number, epoch), rel=1e-6, abs=1e-12), (number, epoch)
        assert shown[number].value == pytest.approx(record.value, rel=1e-12)
        assert float(report_value(html, number)) == pytest.approx(record.value, rel=1e-3)  # 4 significant digits
        if number == PRUNED_TRIAL:  # a pruned trial's value: the last point of its curve, the pruner's last
            assert curve[-1] == pytest.approx(record.value, rel=1e-12)
    assert trials[PRUNED_TRIAL].state == optuna.trial.TrialState.PRUNED
    assert trials[PRUNED_TRIAL].intermediate_values[PRUNED_AT] == pytest.approx(pruned.value, rel=1e-12)
