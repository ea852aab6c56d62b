"""The MLflow run layout of a study, written once: what tracking writes and what the report reads.

A study is one *parent run* (tags ``tuning.study`` = name, ``tuning.role`` = ``study``; the settings as
params with dotted keys; ``version.*`` params; ``dataset.*`` tags; at the end ``best.*`` params,
``best.trial``/``export.dir``/``model.uri`` tags, ``best_valid_<metric>`` and ``test_<metric>`` metrics;
the report under ``report/``; ended FAILED or KILLED, the tag ``study.reason``) with one *trial run* per trial nested under it (tags
``mlflow.parentRunId``, ``tuning.role`` = ``trial``, ``trial.number``, ``trial.state``,
``trial.reason``; the trial's parameters as params; per-epoch curves as step metrics; summary metrics
``objective_<metric>``, ``epochs_run``, ``duration_s``, ``fold_<i>_<metric>``; with several objectives
the measured ``n_params``, ``model_bytes``, ``latency_ms``, ``latency_ms_b256`` and, once the study ends,
the tag ``pareto`` on each complete trial, ``pareto.size`` / ``pareto.trials`` / ``pareto.choice`` on the
parent run). A trial that went on from the checkpoint of an earlier attempt (``tuning.search.trial.resume``)
has that attempt's run, renumbered, with the tags ``trial.resumed_from`` (the earlier attempts' numbers)
and ``trial.resumed_at_epoch``.

:func:`trial_params` / :func:`trial_outcome` turn a :class:`TrialRecord` into that layout and
:func:`record_from_run` turns a trial run back into the record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from tuning.records import COMPLETE, FAILED, KILLED, RUNNING, TrialRecord

# ---- tags ----------------------------------------------------------------------------------------------
STUDY = "tuning.study"
ROLE = "tuning.role"
ROLE_STUDY, ROLE_TRIAL = "study", "trial"
PARENT = "mlflow.parentRunId"
TRIAL_NUMBER = "trial.number"
TRIAL_STATE = "trial.state"
TRIAL_REASON = "trial.reason"
TRIAL_RESUMED_FROM = "trial.resumed_from"  # a resumed trial's earlier attempts (numbers, space-separated)
TRIAL_RESUMED_AT = "trial.resumed_at_epoch"  # the epochs its checkpoint had done
STUDY_REASON = "study.reason"  # on a parent run ended FAILED or KILLED: why (gone once the study runs again)
DATASET_NAME, DATASET_DIGEST, DATASET_SHAPES, DATASET_TASK = "dataset.name", "dataset.digest", "dataset.shapes", "dataset.task"
BEST_TRIAL = "best.trial"
EXPORT_DIR = "export.dir"
EXPORT_NOTES = "export.notes"  # what the export decided for the user (a diverged ensemble member dropped ...)
MODEL_URI = "model.uri"
PARETO = "pareto"  # on a complete trial's run of a study of several objectives: "true" on the Pareto front
PARETO_SIZE, PARETO_TRIALS = "pareto.size", "pareto.trials"  # on the parent run: the front's size and trials
PARETO_CHOICE = "pareto.choice"  # on the parent run: how the exported point was chosen (export.choose)
# ---- params ---------------------------------------------------------------------------------------------
BEST_PARAM = "best.params."  # prefix of the best trial's parameters on the parent run (tags)
VERSION_PARAM = "version."  # prefix of the library versions
SPACE_PARAM = "space."  # prefix of the logged search space (space.<name>.<field>)
# ---- metrics --------------------------------------------------------------------------------------------
EPOCHS_RUN, DURATION = "epochs_run", "duration_s"
SUMMARY_METRICS = (EPOCHS_RUN, DURATION)
#: a trial's other objectives (search.objectives), as measured on its fitted pipeline
MEASURES = ("n_params", "model_bytes", "latency_ms", "latency_ms_b256")
TEST_PREFIX = "test_"
BASELINE_PREFIX = "baseline_test_"  #: the baseline's test scores on the parent run (tuning.export.baseline)
BASELINE_FIT_S = "baseline_fit_s"
BASELINE_MODEL = "baseline.model"
# ---- artifacts ------------------------------------------------------------------------------------------
LEARNING_CURVE = "learning_curve.png"
REPORT_DIR = "report"
MODEL_DIR = "model"
STUDY_FILE = "study.yaml"  # the study text when it came from no file

MAX_REASON = 5000
PAGE = 1000  # runs per search page
MLFLOW_STATUS = {"RUNNING": RUNNING, "SCHEDULED": RUNNING, "KILLED": KILLED, "FAILED": FAILED, "FINISHED": COMPLETE}


def objective_key(metric: str) -> str:
    return f"objective_{metric}" if metric else "objective"


def best_valid_key(metric: str) -> str:
    return f"best_valid_{metric}"


def fold_key(index: int, metric: str) -> str:
    return f"fold_{index}_{metric}"


def param_text(value: Any) -> str:
    """A parameter as MLflow stores it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def study_tags(name: str) -> dict[str, str]:
    return {STUDY: name, ROLE: ROLE_STUDY}


def trial_tags(parent_run_id: str, number: int) -> dict[str, str]:
    return {PARENT: parent_run_id, ROLE: ROLE_TRIAL, TRIAL_NUMBER: str(number)}


def trial_params(params: dict[str, Any]) -> dict[str, str]:
    return {k: param_text(v) for k, v in params.items()}


def trial_outcome(record: TrialRecord, logged: int = 0) -> tuple[list[tuple[str, float, int]], dict[str, str]]:
    """The metrics (key, value, step) and tags a finished trial's run gets (its curves from epoch ``logged``
    + 1: the run of a resumed trial may have the epochs before)."""
    metrics = [(key, float(v), step) for key, values in record.history.items()
               for step, v in enumerate(values, start=1) if v == v and step > logged]
    summary: dict[str, Any] = {EPOCHS_RUN: record.epochs_run, DURATION: record.duration_s}
    if record.value is not None:
        summary[objective_key(record.metric)] = record.value
    if len(record.fold_scores) > 1:
        summary.update({fold_key(i, record.metric): s for i, s in enumerate(record.fold_scores)})
    summary.update(record.measures)
    metrics += [(k, float(v), 0) for k, v in summary.items() if v is not None and v == v]
    tags = {TRIAL_STATE: record.state}
    if record.reason:
        tags[TRIAL_REASON] = record.reason[:MAX_REASON]
    return metrics, tags


def is_curve(key: str) -> bool:
    """Whether a trial-run metric is a per-epoch curve (not a summary)."""
    return key not in SUMMARY_METRICS and key not in MEASURES and not key.startswith(("objective", "fold_"))


def now_ms() -> int:
    return int(time.time() * 1000)


# ---- reading back ---------------------------------------------------------------------------------------


def search_all(client, experiment_ids: list[str], filter_string: str, order_by: list[str] | None = None) -> Iterator:
    """Every run matching ``filter_string``, over all result pages."""
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string, order_by=order_by, max_results=PAGE, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def children_filter(parent_run_id: str, running_only: bool = False) -> str:
    query = f"tags.`{PARENT}` = '{parent_run_id}'"
    return query + (" and attributes.status = 'RUNNING'" if running_only else "")


def study_filter(name: str) -> str:
    return f"tags.`{STUDY}` = '{name}' and tags.`{ROLE}` = '{ROLE_STUDY}'"


def trial_number(run) -> int | None:
    """The trial number of a trial run (None for any other run)."""
    tags = run.data.tags
    if tags.get(ROLE) != ROLE_TRIAL or TRIAL_NUMBER not in tags:
        return None
    return int(tags[TRIAL_NUMBER])


def curves(client, run) -> dict[str, list[float]]:
    """The per-epoch metrics of a trial run (``loss``, ``val_loss`` ...), in epoch order."""
    out = {}
    for key in sorted(run.data.metrics):
        if is_curve(key):
            history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
            out[key] = [m.value for m in history]
    return out


def record_from_run(client, run, metric: str, parse=lambda name, text: _decode(text)) -> TrialRecord:
    """A trial run as the TrialRecord the study made of it; ``parse(name, text)`` reads a param."""
    tags, metrics = run.data.tags, run.data.metrics
    return TrialRecord(
        number=int(tags.get(TRIAL_NUMBER, -1)),
        params={k: parse(k, v) for k, v in run.data.params.items()},
        state=tags.get(TRIAL_STATE) or MLFLOW_STATUS.get(run.info.status, RUNNING),
        value=metrics.get(objective_key(metric), metrics.get("objective")),
        metric=metric,
        fold_scores=fold_scores(metrics, metric, tags.get(TRIAL_STATE)),
        history=curves(client, run),
        epochs_run=int(metrics.get(EPOCHS_RUN, 0)),
        duration_s=float(metrics.get(DURATION, 0.0)),
        reason=tags.get(TRIAL_REASON),
        started_at=(run.info.start_time or 0) / 1000,
        measures={key: metrics[key] for key in MEASURES if key in metrics},
    )


def fold_scores(metrics: dict[str, float], metric: str, state: str | None) -> list[float]:
    """The per-fold scores of a trial run: the ``fold_<i>_<metric>`` metrics (logged when cv >= 2), else
    the objective of a complete trial (its one validation score)."""
    folds = {}
    for key, value in metrics.items():
        index, _, name = key[len("fold_"):].partition("_")
        if key.startswith("fold_") and index.isdigit() and name == metric:
            folds[int(index)] = value
    if folds:
        return [folds[i] for i in sorted(folds)]
    value = metrics.get(objective_key(metric))
    return [value] if state == COMPLETE and value is not None else []


def baseline_of(parent) -> tuple[str, dict[str, float], float] | None:
    """The baseline logged on a parent run: its name, test metrics by name and fit time (None if none)."""
    name = parent.data.tags.get(BASELINE_MODEL)
    if not name:
        return None
    scores = {k[len(BASELINE_PREFIX):]: v for k, v in sorted(parent.data.metrics.items())
              if k.startswith(BASELINE_PREFIX)}
    return name, scores, float(parent.data.metrics.get(BASELINE_FIT_S, float("nan")))


def test_metrics_of(parent) -> dict[str, float]:
    """The test metrics logged on a parent run, by metric name."""
    return {k[len(TEST_PREFIX):]: v for k, v in sorted(parent.data.metrics.items()) if k.startswith(TEST_PREFIX)}


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
