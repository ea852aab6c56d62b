"""Smoke run of benchmarks/estimator_speed.py (tiny data, 3 epochs), once for the module: it keeps working,
and the medians and the ratio it prints are those of the epoch times it recorded; no timing is asserted."""

import json
import math
import os
import re
import statistics
import sys
from pathlib import Path

import pytest

from tests import warm_python

ROOT = Path(__file__).resolve().parents[1]
LABELS = {"baseline": "plain Keras, compile defaults", "ours": "KerasMLPRegressor"}


@pytest.fixture(scope="module")
def speed(tmp_path_factory) -> tuple[str, dict]:
    """(stdout, the --json file) of one --smoke run."""
    out = tmp_path_factory.mktemp("speed") / "speed.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = warm_python.run([sys.executable, str(ROOT / "benchmarks" / "estimator_speed.py"), "--smoke", "--epochs", "3",
                            "--repeats", "1", "--json", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"estimator_speed.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout, json.loads(out.read_text())


def test_estimator_speed_records_every_timed_epoch(speed):
    stdout, m = speed
    assert (m["epochs"], m["repeats"], m["smoke"]) == (3, 1, True)
    assert m["data"] == "synthetic smoke data 300 x 8" and m["data"] in stdout
    for name in LABELS:
        times = m["ms_per_epoch"][name]
        assert len(times) == 2 and all(t > 0 for t in times), times  # 3 epochs: the first (tracing) is left out
        assert m["median_ms_per_epoch"][name] == pytest.approx(statistics.median(times), rel=1e-12)
        (loss,) = m["final_loss"][name]
        assert math.isfinite(loss) and loss > 0


def test_estimator_speed_prints_the_recorded_medians_and_their_ratio(speed):
    stdout, m = speed
    assert "3 epochs x 1 repeats" in stdout
    med, loss = m["median_ms_per_epoch"], m["final_loss"]
    for name, label in LABELS.items():
        assert re.search(rf"^{label} +{med[name]:.1f} ms/epoch \(median of 2 epochs\), final training loss "
                         rf"{loss[name][0]:.4f}$", stdout, re.M), stdout
    assert m["ratio"] == pytest.approx(med["baseline"] / med["ours"], rel=1e-12)
    met = "met" if m["ratio"] >= 3 else "NOT met"
    assert f"ratio (baseline ms/epoch / ours): {m['ratio']:.2f}x (target >= 3x: {met})\n" in stdout
