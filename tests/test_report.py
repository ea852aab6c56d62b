"""Pictures of a study: files on disk and in MLflow, the data they draw, the report CLI, a browser render."""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from mlflow import MlflowClient

from tests import warm_python
from tests.helpers import BASE, merge, run_study_without_model_logging, tracking_uri
from tuning.config.schema import load_study, load_study_dict
from tuning.records import COMPLETE, FAILED, PRUNED, TrialRecord
from tuning.report import plots
from tuning.report.html import (
    CHART_NAMES,
    DATA_FILE,
    REPORT_FILE,
    TEMPLATE,
    ReportError,
    StudyRun,
    find_parent_run,
    load_study_run,
    parse_param,
    render_html,
    report_safely,
    write_pictures,
)

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STUDY = merge(BASE, {
    "name": "tiny-report",
    "space": {
        **BASE["space"],
        # "nope" is no Keras activation: trials that draw it fail, so the pictures see a failed trial too
        "activation": {"type": "categorical", "choices": ["relu", "tanh", "nope"]},
    },
    "preprocessing": {"target_scaling": "none"},
    "search": {"n_trials": 5, "pruner": "hyperband"},
})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One tiny study run end to end (trials, export, report), everything inside a temp dir."""
    tmp = tmp_path_factory.mktemp("report_study")
    data = {**STUDY, "mlflow": {"tracking_uri": tracking_uri(tmp)}, "export": {"dir": str(tmp / "out")}}
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_study_without_model_logging(path, tmp)
    config = load_study(path)
    return SimpleNamespace(path=path, tmp=tmp, result=result, config=config, report_dir=tmp / "out" / "report",
                           client=MlflowClient(config.mlflow.tracking_uri))


def child_runs(client: MlflowClient, parent_run_id: str) -> list:
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return sorted(runs, key=lambda r: int(r.data.tags["trial.number"]))


def finished_in_mlflow(client: MlflowClient, parent_run_id: str) -> list[int]:
    """Numbers of trials whose MLflow run says complete with a finite objective."""
    return [int(r.data.tags["trial.number"]) for r in child_runs(client, parent_run_id)
            if r.data.tags["trial.state"] == COMPLETE and math.isfinite(r.data.metrics["objective_mse"])]


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width > 100 and height > 100, path


class Page(HTMLParser):
    """Tags and attributes of an HTML page (raises nothing: we check what it collected)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


class ChartTables(HTMLParser):
    """The table under each picture of a report: chart name -> rows of cell texts (the header first)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._chart: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "details":
            self._chart = dict(attrs)["data-chart"]
            self.tables[self._chart] = []
        elif tag == "tr" and self._chart:
            self.tables[self._chart].append([])
        elif tag in ("td", "th") and self._chart:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self._chart = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._chart][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


# ------------------------------------------------------------------------------------ the study's report


def test_every_picture_is_one_valid_png(study):
    assert study.result.report_path == study.report_dir / REPORT_FILE
    for name in CHART_NAMES:
        assert_png(study.report_dir / f"{name}.png")
    assert sorted(p.name for p in study.report_dir.iterdir()) == sorted(
        [REPORT_FILE, DATA_FILE, *(f"{name}.png" for name in CHART_NAMES)])  # one drawing per chart


def test_history_draws_one_point_per_finished_trial(study):
    finished = finished_in_mlflow(study.client, study.result.parent_run_id)
    assert finished == sorted(r.number for r in study.result.records if r.finished)
    data = json.loads((study.report_dir / DATA_FILE).read_text())["optimization_history"]["data"]
    assert data["trials"] == finished
    assert data["pruned"] == sorted(r.number for r in study.result.records if r.state == PRUNED)
    assert data["failed"] == sorted(r.number for r in study.result.records if r.state == FAILED)
    values = [r.value for r in sorted(study.result.records, key=lambda r: r.number) if r.finished]
    assert data["values"] == pytest.approx(values)
    assert data["best_so_far"][-1] == pytest.approx(min(values))
    # the figure itself holds those points
    chart = plots.optimization_history(study.result.records, "minimize", "mse")
    (complete,) = [c for c in chart.figure.axes[0].collections if c.get_gid() == "complete"]
    assert [x for x, _ in complete.get_offsets()] == finished


def test_report_reads_back_what_the_study_recorded(study):
    """The records rebuilt from MLflow alone match the ones the backend returned."""
    stored = load_study_run(study.client, study.config)
    assert stored.run_id == study.result.parent_run_id
    mine = sorted(study.result.records, key=lambda r: r.number)
    assert [(r.number, r.state, r.params) for r in stored.records] == [(r.number, r.state, r.params) for r in mine]
    for got, want in zip(stored.records, mine, strict=True):  # Optuna's records hold no curves: count epochs
        assert got.epochs_run == want.epochs_run
        if want.finished:
            assert got.value == pytest.approx(want.value)
            assert len(got.history["loss"]) == len(got.history["val_loss"]) == want.epochs_run


def test_report_uses_the_space_the_run_logged_even_if_the_file_changed(study):
    edited = {**STUDY, "space": {"n_hidden": {"type": "int", "low": 1, "high": 4}}}
    stored = load_study_run(study.client, load_study_dict(edited))
    assert stored.space == study.config.space  # as logged (names the file still has come first)
    assert stored.notes and "differs" in stored.notes[0]
    assert [r.params for r in stored.records] == [r.params for r in sorted(study.result.records, key=lambda r: r.number)]
    assert not load_study_run(study.client, study.config).notes


def test_report_html_is_self_contained_and_embeds_every_picture(study):
    text = (study.report_dir / REPORT_FILE).read_text()
    page = Page(text)
    images = {img["data-file"]: img["src"] for img in page.all("img")}
    assert set(images) == {f"{name}.png" for name in CHART_NAMES}
    for name, src in images.items():
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix):]) == (study.report_dir / name).read_bytes()
    assert not page.all("script") and not page.all("link") and not page.all("a")  # nothing to fetch
    rows = [attrs for attrs in page.all("tr") if attrs.get("class")]
    assert len(rows) == len(study.result.records)  # one row per trial in the trials table


def test_report_prints_the_values_each_picture_draws(study):
    """Under each picture, a table to unfold holds what it draws (what hovering gave in a plotly page)."""
    tables = ChartTables((study.report_dir / REPORT_FILE).read_text()).tables
    assert set(tables) == {"optimization_history", "param_importances", "parallel_coordinates",
                           "best_learning_curve", "top_learning_curves"}
    done = sorted((r for r in study.result.records if r.finished), key=lambda r: r.number)
    header, *rows = tables["optimization_history"]
    assert header == ["trial", "validation mse", "best so far"]
    assert [int(row[0]) for row in rows] == [r.number for r in done]
    assert [float(row[1]) for row in rows] == pytest.approx([r.value for r in done], rel=1e-3)  # 4 digits
    assert float(rows[-1][2]) == pytest.approx(min(r.value for r in done), rel=1e-3)
    header, *rows = tables["parallel_coordinates"]
    assert header == ["rank", "trial", *study.config.space, "validation mse"]
    assert [int(row[1]) for row in rows] == [r.number for r in sorted(done, key=lambda r: r.value)]
    header, *rows = tables["param_importances"]
    assert sorted(row[0] for row in rows) == sorted(study.config.space)
    assert sum(float(row[1]) for row in rows) == pytest.approx(1.0, abs=0.01)
    best = min(done, key=lambda r: r.value)
    header, *rows = tables["best_learning_curve"]
    assert header[0] == "epoch" and {"loss", "val_loss"} <= set(header) and len(rows) == best.epochs_run
    stored = {r.number: r for r in load_study_run(study.client, study.config).records}[best.number]
    column = header.index("val_loss")
    assert [float(row[column]) for row in rows] == pytest.approx(stored.history["val_loss"], rel=1e-3)


def test_report_is_logged_to_the_parent_run(study):
    logged = {Path(a.path).name for a in study.client.list_artifacts(study.result.parent_run_id, "report")}
    assert logged == {REPORT_FILE, DATA_FILE} | {f"{n}.png" for n in CHART_NAMES}


def test_complete_trials_carry_their_learning_curve(study, tmp_path):
    runs = child_runs(study.client, study.result.parent_run_id)
    assert any(r.data.tags["trial.state"] == COMPLETE for r in runs)
    for run in runs:
        names = {a.path for a in study.client.list_artifacts(run.info.run_id)}
        assert ("learning_curve.png" in names) == (run.data.tags["trial.state"] == COMPLETE), run.data.tags
    complete = next(r for r in runs if r.data.tags["trial.state"] == COMPLETE)
    assert_png(Path(study.client.download_artifacts(complete.info.run_id, "learning_curve.png", str(tmp_path))))


def test_cli_regenerates_the_report_from_storage(study):
    shutil.rmtree(study.report_dir)
    done = warm_python.run([sys.executable, "-m", "tuning.report", str(study.path)], cwd=study.tmp,
                           capture_output=True, text=True, timeout=120, env=env())
    assert done.returncode == 0, done.stderr
    assert str(Path("out") / "report" / REPORT_FILE) in done.stdout
    for name in CHART_NAMES:
        assert_png(study.report_dir / f"{name}.png")
    assert (study.report_dir / REPORT_FILE).is_file()


def test_cli_exits_2_on_a_missing_study_file(tmp_path):
    done = warm_python.run([sys.executable, "-m", "tuning.report", str(tmp_path / "missing.yaml")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120, env=env())
    assert done.returncode == 2
    assert "study file not found" in done.stderr


def test_no_run_found_is_a_clear_error_and_never_fails_a_study(study, caplog):
    config = study.config.with_overrides(experiment="no-such-experiment")
    with pytest.raises(ReportError, match="no run of study 'tiny-report'"):
        find_parent_run(study.client, config)
    trial_run = child_runs(study.client, study.result.parent_run_id)[0].info.run_id
    with pytest.raises(ReportError, match="not the parent run of a study"):
        find_parent_run(study.client, study.config, trial_run)
    with caplog.at_level(logging.WARNING, logger="tuning.report"):
        assert report_safely(config, None, None) is None
    assert "report could not be written" in caplog.text


def test_report_renders_in_a_headless_browser(study):
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        print("no chromium, chromium-browser or google-chrome on PATH: browser check skipped")
        pytest.skip("no headless browser installed")
    report = study.report_dir / REPORT_FILE
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", report.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = Page(done.stdout)
    assert len([img for img in dom.all("img") if img["src"].startswith("data:image/png;base64,")]) == len(CHART_NAMES)
    assert "Uncaught" not in done.stderr


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


# ----------------------------------------------------------------------------- plots from records alone

SPACE = load_study_dict({
    "name": "space-only",
    "dataset": {"source": "diabetes"},
    "space": {
        "n_hidden": {"type": "int", "low": 0, "high": 3},
        "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-2, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
        "activation": {"type": "categorical", "choices": ["relu", "tanh", None]},
    },
}).space


def synthetic_records(n: int) -> list[TrialRecord]:
    """Trials as a random search would record them: a pruned one, a failed one and a missing number."""
    records = []
    for i in range(n):
        if i == 4:
            continue  # e.g. a trial still running elsewhere
        params = {"n_hidden": i % 4, "learning_rate": 3e-4 * 1.5**i, "dropout": round(0.1 * (i % 6), 12),
                  "activation": ["relu", "tanh", None][i % 3]}
        loss = [10.0 / (e + 1) + params["n_hidden"] for e in range(5 + i % 3)]
        state = PRUNED if i == 2 else FAILED if i == 5 else COMPLETE
        value = None if state == FAILED else loss[-1] * 1.1
        records.append(TrialRecord(i, params, state, value, "mse", history={"loss": loss, "val_loss": [v * 1.1 for v in loss]},
                                   epochs_run=len(loss)))
    return records


def test_charts_from_records_of_either_backend():
    records = synthetic_records(10)
    charts = {c.name: c for c in plots.study_charts(records, SPACE, "minimize", "mse")}
    assert list(charts) == list(CHART_NAMES) and all(c.figure is not None and c.note is None for c in charts.values())
    finished = [r.number for r in records if r.finished]
    assert charts["optimization_history"].data["trials"] == finished
    assert charts["optimization_history"].data["pruned"] == [2] and charts["optimization_history"].data["failed"] == [5]
    importances = charts["param_importances"].data["importances"]
    assert set(importances) == set(SPACE) and sum(importances.values()) == pytest.approx(1.0)
    assert [line["trial"] for line in charts["parallel_coordinates"].data["lines"]][0] == charts["best_learning_curve"].data["trial"]
    assert charts["slices"].data["activation"]["x"] == [r.params["activation"] for r in records if r.finished]
    assert charts["top_learning_curves"].data["trials"] == [r.number for r in plots.ranked(records, "minimize")][:5]


def test_in_memory_optuna_study_keeps_trial_numbers():
    study = plots.optuna_study(synthetic_records(10), SPACE, "minimize")
    states = {t.number: t.state.name for t in study.trials}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "PRUNED", 3: "COMPLETE", 4: "FAIL", 5: "FAIL",
                      6: "COMPLETE", 7: "COMPLETE", 8: "COMPLETE", 9: "COMPLETE"}


def test_too_few_trials_skip_pictures_with_a_note():
    one = [r for r in synthetic_records(2) if r.finished][:1]
    charts = {c.name: c for c in plots.study_charts(one, SPACE, "minimize", "mse")}
    assert charts["param_importances"].figure is None and "at least 2 complete trials" in charts["param_importances"].note
    assert charts["optimization_history"].figure is not None
    assert plots.learning_curve_figure({}) is None
    assert charts["optimization_history"].table and not charts["param_importances"].table


def test_a_flat_objective_skips_importances_with_a_note():
    records = [TrialRecord(r.number, r.params, COMPLETE, 1.0, "mse") for r in synthetic_records(6)]
    study = plots.optuna_study(records, SPACE, "minimize")
    chart = plots.importance_chart(study, "mse")
    assert chart.figure is None and "could not be computed" in chart.note and not chart.table


@pytest.mark.parametrize("value", [3, 0.0123, 1e-05, "relu", None, True, 2])
def test_params_read_back_from_mlflow_with_their_types(value):
    spec = SPACE["activation"] if value in ("relu", None) else SPACE["dropout"] if isinstance(value, float) else None
    text = value if isinstance(value, str) else json.dumps(value)  # as the tracker logs params
    got = parse_param(spec, text)
    assert got == value and type(got) is type(value)


def test_a_learning_curve_shows_the_study_metric_beside_the_loss():
    """The per-epoch objective (``valid_<metric>``) gets the panel beside the losses, next to Keras' own
    validation metrics; the losses alone keep one panel."""
    history = {"loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.85], "valid_rmse": [1.05, 0.95, 0.92]}
    figure = plots.learning_curve_figure(history, "trial 0")
    assert len(figure.axes) == 2
    lines = {line.get_label(): list(line.get_ydata()) for line in figure.axes[1].get_lines()}
    assert lines == {"validation rmse": [1.05, 0.95, 0.92]}
    classifier = plots.learning_curve_figure({**history, "accuracy": [0.5, 0.6, 0.7], "val_accuracy": [0.4, 0.5, 0.6]})
    labels = {line.get_label() for line in classifier.axes[1].get_lines()}
    assert labels == {"validation rmse", "training accuracy", "validation accuracy"}
    assert len(plots.learning_curve_figure({"loss": [1.0], "val_loss": [1.2]}).axes) == 1


def test_optuna_draws_quietly_and_leaves_matplotlib_and_optuna_as_they_were():
    """Optuna's charts: no ExperimentalWarning (nor matplotlib's on one trial) out, its ggplot style undone,
    no figure left registered in pyplot, Optuna's log level back."""
    import matplotlib
    import optuna
    from matplotlib import pyplot

    rc, verbosity = dict(matplotlib.rcParams), optuna.logging.get_verbosity()
    one = [r for r in synthetic_records(2) if r.finished][:1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        charts = [*plots.study_charts(synthetic_records(10), SPACE, "maximize", "mse"),
                  *plots.study_charts(one, SPACE, "minimize", "mse")]
    assert sum(c.figure is not None for c in charts) == 2 * len(CHART_NAMES) - 1  # one trial: no importances
    assert dict(matplotlib.rcParams) == rc and optuna.logging.get_verbosity() == verbosity
    assert pyplot.get_fignums() == []


def test_the_page_template_ships_in_the_package():
    """importlib.resources finds the template (as in an installed wheel), and pyproject's package data
    names it, so a non-editable install carries it."""
    template = resources.files("tuning.report").joinpath(TEMPLATE)
    assert template.is_file() and "<!DOCTYPE html>" in template.read_text(encoding="utf-8")
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(Path(TEMPLATE).match(pattern) for pattern in package_data["tuning.report"])


def test_the_page_escapes_what_a_study_names(tmp_path):
    """Names, notes, params and reasons come from the user and MLflow: the template autoescapes them, and
    the trials table keeps the cells tests and users read (``<tr class><td num>N</td><td>state</td>...``)."""
    evil = "<script>alert('x')</script>"
    records = synthetic_records(6)
    records[0].reason = evil
    records[1].params["activation"] = evil
    run = SimpleNamespace(info=SimpleNamespace(status="FINISHED", run_id="r1", run_name=evil),
                          data=SimpleNamespace(tags={}, metrics={}, params={}))
    study = StudyRun(run, "mse", "minimize", SPACE, {}, records, notes=[evil], experiment=evil)
    config = load_study_dict({"name": "escape", "dataset": {"source": "diabetes"},
                              "space": {"n_hidden": {"type": "int", "low": 0, "high": 3}}})
    charts = write_pictures(study, tmp_path)
    text = render_html(study, config, charts, tmp_path)
    assert "<script" not in text and text.count("&lt;script&gt;") >= 5
    page = Page(text)
    assert not page.all("script") and page.all("h1")
    assert len([attrs for attrs in page.all("tr") if attrs.get("class")]) == len(records)
    for record in records:
        cell = rf'<tr class="[^"]*"><td class="num">{record.number}</td><td>{record.state}</td><td class="num">'
        assert re.search(cell, text), record.number
