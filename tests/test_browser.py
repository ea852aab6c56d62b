"""A real browser on a small finished study: its report.html and the MLflow UI, as a user sees them.

Playwright drives the system's Chromium (no browser download): set ``TUNING_CHROMIUM`` to a Chromium
or Chrome binary, or have ``chromium`` / ``chromium-browser`` on PATH (Debian: ``apt-get install
chromium``). Without one, or without the ``playwright`` package, these tests skip and say why.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from mlflow import MlflowClient

from tests.helpers import run_study_without_model_logging, study_dict
from tests.mlflow_server import mlflow_server, wait_healthy
from tuning.report.html import CHART_NAMES

VIEWPORT = {"width": 1280, "height": 900}
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000  # one element appearing; pages of the MLflow UI render in seconds, slower on a busy machine


def _chromium() -> str | None:
    explicit = os.environ.get("TUNING_CHROMIUM")
    if explicit:
        return explicit
    return next(filter(None, (shutil.which(name) for name in ("chromium", "chromium-browser"))), None)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A fresh headless Chromium (its own empty profile), closed at the end."""
    executable = _chromium()
    if executable is None:
        reason = "no Chromium found (set TUNING_CHROMIUM, or install it: apt-get install chromium)"
        print(reason)
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "the playwright package is not installed (pip install -e '.[test]')"
        print(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=executable, headless=True,
            args=LAUNCH_ARGS, viewport=VIEWPORT)
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished two-trial study with its report, tracked in a SQLite MLflow store in a temp dir."""
    tmp = tmp_path_factory.mktemp("browser_study")
    data = study_dict(tmp, name="tiny-browser", search={"n_trials": 2})
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_study_without_model_logging(path, tmp)
    assert result.report_path is not None and result.n_complete == 2
    uri = data["mlflow"]["tracking_uri"]
    return SimpleNamespace(tmp=tmp, result=result, tracking_uri=uri, client=MlflowClient(uri))


def assert_png_screenshot(path: Path, width: int, height: int) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, path
    assert struct.unpack(">II", data[16:24]) == (width, height)  # the IHDR chunk: the page as shown


def test_report_renders_its_images_and_tables(browser, study, tmp_path):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(Path(study.result.report_path).as_uri(), wait_until="load")

    images = page.eval_on_selector_all("img", "els => els.map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) == len(CHART_NAMES)
    for alt, complete, width, height in images:
        assert complete and width > 100 and height > 100, alt  # decoded, not a broken-image icon
    assert page.locator("h1").inner_text() == "Study tiny-browser"

    summary = dict(page.eval_on_selector_all(
        "body > table:first-of-type tr", "rows => rows.map(r => [r.cells[0].innerText, r.cells[1].innerText])"))
    best = study.result.best
    assert summary["best trial"] == str(best.number)
    assert float(summary["best validation mse"]) == pytest.approx(best.value, rel=1e-3)  # shown with 4 digits

    trials = page.locator("h2:has-text('Trials') + table")
    header = trials.locator("thead th").all_inner_texts()
    assert header[:3] == ["trial", "state", "mse"]
    rows = trials.locator("tbody tr")
    assert rows.count() == len(study.result.records)
    for row, record in zip(rows.all(), sorted(study.result.records, key=lambda r: r.number), strict=True):
        cells = row.locator("td").all_inner_texts()
        assert cells[0] == str(record.number) and cells[1] == record.state
        assert float(cells[2]) == pytest.approx(record.value, rel=1e-3)
        assert int(cells[header.index("n_hidden")]) == record.params["n_hidden"]
        assert row.is_visible()
    values = page.locator('details[data-chart="optimization_history"]')  # the values under a picture
    assert not values.locator("table").is_visible()  # folded until asked for
    values.locator("summary").click()
    drawn = values.locator("tbody tr")
    assert drawn.count() == study.result.n_complete and drawn.first.is_visible()
    assert not errors

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    assert_png_screenshot(shot, VIEWPORT["width"], VIEWPORT["height"])
    page.close()


# ---------------------------------------------------------------------------------------------- MLflow UI
@contextlib.contextmanager
def mlflow_ui(tracking_uri: str, directory: Path, timeout: float = 180) -> Iterator[str]:
    """``mlflow server`` on a free loopback port over ``tracking_uri``; yields its URL once it is healthy."""
    with mlflow_server(directory, tracking_uri, timeout) as server:
        yield wait_healthy(server)


def run_link(page, run_id: str):
    """The link to a run in the experiment's runs table."""
    return page.locator(f'[role="row"] {_href(run_id)}')


def _href(run_id: str) -> str:
    return f'a[href$="/runs/{run_id}"]'


# The points plotted in the chart whose legend is `label`: the nearest ancestor holding a plotly plot.
POINTS_OF_CHART = """label => {
  const legend = [...document.querySelectorAll('*')].find(e => e.childElementCount === 0 && e.textContent === label);
  for (let node = legend; node; node = node.parentElement) {
    const layer = node.querySelector('.scatterlayer');
    if (layer) return layer.querySelectorAll('path.point').length;
  }
  return -1;
}"""


def test_mlflow_ui_shows_trials_nested_under_the_study_and_a_val_loss_history(browser, study, tmp_path):
    client, result = study.client, study.result
    parent = client.get_run(result.parent_run_id)
    trials = client.search_runs([parent.info.experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(trials) == 2
    trial = min(trials, key=lambda r: int(r.data.tags["trial.number"]))
    history = [m.value for m in client.get_metric_history(trial.info.run_id, "val_loss")]
    assert len(history) >= 2 and all(math.isfinite(v) for v in history)

    with mlflow_ui(study.tracking_uri, tmp_path) as url:
        page = browser.new_page()
        page.goto(f"{url}/#/experiments/{parent.info.experiment_id}/runs?workflowType=machine_learning")
        parent_link = run_link(page, parent.info.run_id)
        parent_link.wait_for()
        assert parent_link.inner_text() == parent.info.run_name
        page.get_by_text(f"{1 + len(trials)} matching runs").wait_for()
        for run in trials:  # nested: hidden until the parent is expanded
            assert run_link(page, run.info.run_id).count() == 0
        page.get_by_role("row").filter(has=page.locator(_href(parent.info.run_id))).locator("button").first.click()
        for run in trials:
            run_link(page, run.info.run_id).wait_for()
            assert run_link(page, run.info.run_id).inner_text() == run.info.run_name
        shown = page.eval_on_selector_all('[role="row"] a[href*="/runs/"]', "links => links.map(a => a.href)")
        order = [next(r.info.run_id for r in [parent, *trials] if href.endswith(r.info.run_id)) for href in shown]
        assert order[0] == parent.info.run_id and sorted(order[1:]) == sorted(r.info.run_id for r in trials)
        shot = tmp_path / "experiment.png"
        page.screenshot(path=str(shot))
        assert_png_screenshot(shot, VIEWPORT["width"], VIEWPORT["height"])

        run_link(page, trial.info.run_id).click()
        page.wait_for_url(f"**/runs/{trial.info.run_id}**")
        page.get_by_text("Parent run", exact=True).wait_for()
        link_to_parent = page.locator(f"main {_href(parent.info.run_id)}")  # the trial's "Parent run"
        link_to_parent.wait_for()
        assert link_to_parent.inner_text() == parent.info.run_name
        main = page.locator("main").inner_text()
        assert trial.info.run_id in main and parent.info.run_name in main and "val_loss" in main

        page.get_by_role("link", name="val_loss", exact=True).first.click()  # the metric's charts
        legend = f"{trial.info.run_name} (val_loss)"
        page.get_by_text(legend, exact=True).wait_for()
        page.wait_for_function(f"() => ({POINTS_OF_CHART})({legend!r}) > 0")
        assert page.evaluate(POINTS_OF_CHART, legend) == len(history)  # one point per epoch
        shot = tmp_path / "val_loss.png"
        page.screenshot(path=str(shot))
        assert_png_screenshot(shot, VIEWPORT["width"], VIEWPORT["height"])
        page.close()
