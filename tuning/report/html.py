"""``python -m tuning.report STUDY.yaml``: the pictures of a study and one self-contained ``report.html``.

The report is rebuilt from what the study stored in MLflow, never from the memory of the process that
ran it: the study's parent run (the newest run of the study's experiment tagged ``tuning.study=<name>``,
or the one given by ``--run-id``) and its child runs (params, ``trial.state``, the objective and the
per-epoch curves). The search space and metric are the ones the run logged, so a study file edited
since does not skew the pictures. So it works the same for both backends, for a finished study and for
one still running, and for ``--workers`` studies (they share one parent run). The files go to ``<export dir>/report/`` (``--output-dir`` moves the export dir, as it does for
``tuning.run``) and are logged to the parent run under ``report/``:

* ``optimization_history``, ``param_importances``, ``parallel_coordinates``, ``slices``,
  ``best_learning_curve``, ``top_learning_curves`` (and ``pareto_front`` first, for several objectives):
  one ``.png`` each (matplotlib, the one drawing of a chart: what the MLflow UI shows and the report embeds);
* ``data.json`` (the data each picture draws) and ``report.html`` (summary, pictures as data URIs, under
  each the values it draws as a table to unfold, every trial; no script, no external resource), rendered
  from the Jinja2 template this package ships (``templates/report.html.j2``) with autoescaping.

Exit codes: 0 report written, 2 bad study file or no run of the study found, 1 any other failure.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from tuning.config.overrides import LOCATION, Overrides, add_arguments
from tuning.config.schema import CategoricalParam, FloatParam, ParamSpec, SearchConfig, StudyConfig
from tuning.errors import StudyError
from tuning.records import COMPLETE, FAILED, KILLED, PRUNED, RUNNING, TrialRecord, best_record, pareto_front
from tuning.search.space import Space
from tuning.tracking import runlayout as layout

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)

REPORT_DIR = layout.REPORT_DIR
REPORT_FILE = "report.html"
DATA_FILE = "data.json"
#: Every file a report may write (a picture that cannot be drawn yet leaves no stale file behind).
CHART_NAMES = ("optimization_history", "param_importances", "parallel_coordinates", "slices",
               "best_learning_curve", "top_learning_curves")
PARETO_CHART = "pareto_front"  #: first among them for a study of several objectives (tuning.report.pareto)


class ReportError(StudyError):
    """No report can be made: no run of the study, or a run that is not a study's parent run."""


@dataclass
class StudyRun:
    """What MLflow holds about one study: its parent run and a record per trial."""

    run: Any
    metric: str
    direction: str
    space: Space
    settings: dict[str, Any] = field(default_factory=dict)
    records: list[TrialRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    experiment: str = ""
    #: (name, direction) of each objective, the metric first (one, unless search.objectives lists several)
    objectives: list[tuple[str, str]] = field(default_factory=list)

    @property
    def others(self) -> list[str]:
        """The objectives after the metric (several objectives), as the trials table shows them."""
        return [name for name, _ in self.objectives[1:]]

    @property
    def front(self) -> set[int]:
        """The Pareto front's trial numbers (several objectives; empty for one)."""
        return {r.number for r in pareto_front(self.records, self.objectives)} if len(self.objectives) > 1 else set()

    @property
    def name(self) -> str:
        return self.run.data.tags.get(layout.STUDY, self.run.info.run_name or "")

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def best(self) -> TrialRecord | None:
        """The exported trial (several objectives: the chosen point, tag ``best.trial``), else the best."""
        chosen = self.run.data.tags.get(layout.BEST_TRIAL) if len(self.objectives) > 1 else None
        record = next((r for r in self.records if str(r.number) == chosen), None)
        return record or best_record(self.records, self.direction)

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.records)


# ------------------------------------------------------------------------------------------- MLflow reads


def find_parent_run(client, config: StudyConfig, run_id: str | None = None):
    """The study's parent run: ``run_id`` if given, else the newest one of the study in its experiment."""
    if run_id:
        from mlflow.exceptions import MlflowException

        try:
            run = client.get_run(run_id)
        except MlflowException:
            raise ReportError(f"no MLflow run '{run_id}' at {client.tracking_uri}") from None
        if run.data.tags.get(layout.ROLE) != layout.ROLE_STUDY:
            raise ReportError(f"run '{run_id}' is not the parent run of a study (tag {layout.ROLE} is not "
                              f"'{layout.ROLE_STUDY}')")
        return run
    experiment = client.get_experiment_by_name(config.experiment_name)
    runs = [] if experiment is None else client.search_runs(
        [experiment.experiment_id],
        filter_string=layout.study_filter(config.name),
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    if not runs:
        raise ReportError(f"no run of study '{config.name}' in MLflow experiment '{config.experiment_name}' at "
                          f"{client.tracking_uri} (run the study first, or give --tracking-uri / --run-id)")
    return runs[0]


def child_runs(client, parent) -> list:
    """Every trial run under ``parent``, oldest first (all result pages)."""
    return list(layout.search_all(client, [parent.info.experiment_id], layout.children_filter(parent.info.run_id),
                                  order_by=["attributes.start_time ASC"]))


def parse_param(spec: Any, text: str) -> Any:
    """A trial run's param (as the tracker logs it: strings as they are, anything else as JSON) as a value."""
    if isinstance(spec, CategoricalParam):
        for choice in spec.choices:
            if text == (choice if isinstance(choice, str) else json.dumps(choice)):
                return choice
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(spec, FloatParam) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def record_from_run(client, run, space: Space, metric: str) -> TrialRecord:
    """A trial run as the TrialRecord the study made of it (params read back as the space's types)."""
    return layout.record_from_run(client, run, metric, parse=lambda name, text: parse_param(space.get(name), text))


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def run_settings(parent) -> dict[str, Any]:
    """The study settings the parent run logged (dotted keys such as ``search.metric``), decoded."""
    return {key: _decode(text) for key, text in parent.data.params.items()}


def logged_space(settings: dict[str, Any], config_space: Space) -> Space | None:
    """The search space the study ran with, from its logged settings, in the study file's order if it can."""
    specs: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "space":
            specs.setdefault(parts[1], {})[parts[2]] = value
    adapter = TypeAdapter(ParamSpec)
    try:
        space = {name: adapter.validate_python(spec) for name, spec in specs.items()}
    except ValidationError:
        return None
    order = [n for n in config_space if n in space] + sorted(set(space) - set(config_space))
    return {name: space[name] for name in order} or None


def study_metric(config: StudyConfig, parent, settings: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]]]:
    """The objective metric, its direction and every objective (name, direction), from the metric, objectives
    and task the study logged (or the config's)."""
    task = parent.data.tags.get(layout.DATASET_TASK) or config.dataset.task
    if task is None:
        raise ReportError("the study run has no dataset.task tag and the study file does not give the task")
    search = SearchConfig(metric=settings.get("search.metric", config.search.metric),
                          objectives=settings.get("search.objectives", config.search.objectives))
    return search.resolved_metric(task), search.direction(task), search.objective_list(task)


def load_study_run(client, config: StudyConfig, run_id: str | None = None) -> StudyRun:
    """The parent run and one record per trial number (a trial run again later, e.g. on resume: the latest).

    The space and metric are the ones the run logged, so a study file edited since does not skew the report.
    """
    parent = find_parent_run(client, config, run_id)
    settings = run_settings(parent)
    space = logged_space(settings, config.space) or config.space
    metric, direction, objectives = study_metric(config, parent, settings)
    study = StudyRun(parent, metric, direction, space, settings,
                     experiment=client.get_experiment(parent.info.experiment_id).name, objectives=objectives)
    if space != config.space:
        study.notes.append("the study file's search space differs from the one this run used; the report "
                           "shows the run's space")
    by_number = {}
    for run in child_runs(client, parent):
        record = record_from_run(client, run, space, metric)
        if record.number >= 0:
            by_number[record.number] = record
    study.records = [by_number[n] for n in sorted(by_number)]
    return study


# ------------------------------------------------------------------------------------------------ files


def write_pictures(study: StudyRun, out_dir: Path) -> list:
    """PNG of every chart that can be drawn, and ``data.json``; the charts."""
    from tuning.report import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (*CHART_NAMES, PARETO_CHART):
        for suffix in (".png", ".html"):  # .html: the interactive pages of earlier versions
            (out_dir / f"{name}{suffix}").unlink(missing_ok=True)
    optuna_study = plots.optuna_study(study.records, study.space, study.direction)
    charts = plots.study_charts(study.records, study.space, study.direction, study.metric, study=optuna_study)
    if len(study.objectives) > 1:  # several objectives: their Pareto front first
        from tuning.report.pareto import pareto_chart

        best = study.best
        prefix = "export.choose.where."  # the bounds, as the parent run logged the settings
        where = {k[len(prefix):]: v for k, v in study.settings.items() if k.startswith(prefix)}
        charts.insert(0, pareto_chart(study.records, study.objectives, None if best is None else best.number, where))
    for chart in charts:
        if chart.figure is not None:
            plots.save_png(chart.figure, out_dir / f"{chart.name}.png")
    data = {c.name: {"title": c.title, "note": c.note, "data": c.data} for c in charts}
    (out_dir / DATA_FILE).write_text(json.dumps(data, indent=1, default=str, allow_nan=True) + "\n")
    return charts


TEMPLATE = "templates/report.html.j2"


@functools.cache
def template() -> jinja2.Template:
    """The page's Jinja2 template, shipped in this package (``templates/report.html.j2``), autoescaping."""
    import jinja2

    text = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["num"] = _fmt
    return env.from_string(text)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return "" if value is None else str(value)


def search_text(settings: dict[str, Any], config: StudyConfig) -> str:
    """Backend, sampler, pruner and scoring as the run logged them (the study file's where not logged)."""
    def get(key: str) -> Any:
        return settings.get(f"search.{key}", getattr(config.search, key))

    optuna = f" ({get('sampler')} sampler, {get('pruner')} pruner)" if get("backend") == "optuna" else ""
    return f"{get('backend')}{optuna}, {get('n_trials')} trials asked, cv={get('cv')}"


def summary_pairs(study: StudyRun, config: StudyConfig) -> list[tuple[str, Any]]:
    """The report's summary: search, trial counts, best trial and its validation and test scores."""
    run, best = study.run, study.best
    counts = ", ".join(f"{study.count(s)} {s}" for s in (COMPLETE, PRUNED, FAILED, KILLED, RUNNING)
                       if study.count(s) or s == COMPLETE)
    pairs: list[tuple[str, Any]] = [
        ("status", run.info.status),
        ("dataset", run.data.tags.get(layout.DATASET_NAME, config.dataset.source)),
        ("search", search_text(study.settings, config)),
        ("objective", f"validation {study.metric} ({study.direction})"),
        ("trials", f"{len(study.records)}: {counts}"),
        ("training time", f"{sum(r.duration_s for r in study.records):.1f} s over all trials"),
    ]
    if best is None:
        return pairs + [("best trial", "no trial completed yet")]
    if len(study.objectives) > 1:
        pairs += [("objectives", ", ".join(f"{n} ({d})" for n, d in study.objectives)),
                  ("pareto front", f"{len(study.front)} trials: {', '.join(map(str, sorted(study.front)))}")]
        pairs += [("chosen trial", best.number), (f"chosen validation {study.metric}", best.value)]
        pairs += [(f"chosen {k}", v) for k, v in best.measures.items()]
        pairs.append(("chosen by", run.data.tags.get(layout.PARETO_CHOICE, "")))
    else:
        pairs += [("best trial", best.number), (f"best validation {study.metric}", best.value)]
    pairs += [(f"best {k}", v) for k, v in best.params.items()]
    exported = exported_model_text(run, study.metric)
    if exported:
        pairs.append(("exported model", exported))
    pairs += [(f"test {k}", v) for k, v in layout.test_metrics_of(run).items()]
    baseline = layout.baseline_of(run)
    if baseline is not None:
        name, scores, fit_s = baseline
        shown = ", ".join(f"test {k} {_fmt(v)}" for k, v in scores.items())
        pairs.append((f"baseline: {name}", f"{shown} (defaults, same rows; fit in {fit_s:.1f} s)"))
    return pairs


def exported_model_text(run, metric: str) -> str:
    """What the study exported: an ensemble's members (trial: weight) and validation score, or the best
    trial's model; "" before an export."""
    if not run.data.tags.get(layout.EXPORT_DIR):
        return ""
    members = run.data.tags.get("ensemble_members")
    if not members:
        return f"trial {run.data.tags.get(layout.BEST_TRIAL, '?')}'s model"
    pairs = [member.split(":") for member in members.split()]
    listed = ", ".join(f"trial {trial} (weight {weight})" for trial, weight in pairs)
    score = run.data.metrics.get(f"ensemble_valid_{metric}")
    scored = f"; validation {metric} {_fmt(score)}" if score is not None else ""
    return f"ensemble of {len(pairs)}: {listed}{scored}"


def render_html(study: StudyRun, config: StudyConfig, charts: list, out_dir: Path) -> str:
    """The whole report as one HTML page with no external resource: summary, every picture (a data URI) with
    its caption and, to unfold, the values it draws, every trial."""
    images = {c.name: base64.b64encode((out_dir / f"{c.name}.png").read_bytes()).decode("ascii")
              for c in charts if c.figure is not None}
    names = list(study.space) + sorted({k for r in study.records for k in r.params} - set(study.space))
    return template().render(study=study, generated=time.strftime("%Y-%m-%d %H:%M:%S"), charts=charts,
                             images=images, summary=summary_pairs(study, config), names=names)


# ------------------------------------------------------------------------------------------------- entry


def generate_report(config: StudyConfig, tracking_uri: str | None = None, run_id: str | None = None,
                    out_dir: str | Path | None = None, log_to_run: bool = True) -> Path:
    """Write the pictures and ``report.html`` of a study from MLflow; return the path of ``report.html``.

    ``out_dir`` defaults to ``<export dir>/report``; with ``log_to_run`` the files are also logged to the
    parent run under ``report/``.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri or config.mlflow.tracking_uri)
    study = load_study_run(client, config, run_id)
    directory = Path(out_dir) if out_dir is not None else config.export_dir / REPORT_DIR
    charts = write_pictures(study, directory)
    report = directory / REPORT_FILE
    report.write_text(render_html(study, config, charts, directory), encoding="utf-8")
    if log_to_run:
        client.log_artifacts(study.run_id, str(directory), REPORT_DIR)
    return report


def report_safely(config: StudyConfig, tracking_uri: str | None, run_id: str | None) -> Path | None:
    """``generate_report`` for the end of a study: failing to draw is a warning, never a failed study."""
    try:
        return generate_report(config, tracking_uri=tracking_uri, run_id=run_id)
    except Exception as exc:  # a picture must never cost the study
        log.warning("the study report could not be written: %s: %s", type(exc).__name__, exc)
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuning.report",
                                description="Write the pictures and report.html of a study from MLflow.")
    p.add_argument("study", help="path to the study YAML file")
    p.add_argument("--run-id", help="the study's parent MLflow run (default: the newest run of the study)")
    add_arguments(p, LOCATION)  # --tracking-uri, --experiment, --output-dir (the report goes to its report/)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tuning.parallel.process import configure_study_process

    configure_study_process()
    try:
        from tuning.config.schema import load_study

        config = load_study(args.study).with_overrides(Overrides.from_args(args))
        path = generate_report(config, run_id=args.run_id)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {path}")
    return 0
