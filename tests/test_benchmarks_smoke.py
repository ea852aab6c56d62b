"""Smoke run of benchmarks/estimator_speed.py (tiny data, 2 epochs): it keeps working; no timing asserted."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_estimator_speed(*args: str) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "estimator_speed.py"), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"estimator_speed.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_estimator_speed_smoke():
    stdout = run_estimator_speed("--smoke", "--epochs", "3", "--repeats", "1")
    assert "3 epochs x 1 repeats" in stdout
    for label in ("plain Keras, compile defaults", "KerasMLPRegressor"):
        line = re.search(rf"^{label} +(\d+\.\d) ms/epoch \(median of 2 epochs\), final training loss (\d+\.\d+)",
                         stdout, re.M)
        assert line, stdout
        assert float(line.group(1)) > 0 and float(line.group(2)) > 0
    assert re.search(r"^ratio \(baseline ms/epoch / ours\): \d+\.\d\dx \(target >= 3x: (met|NOT met)\)$", stdout, re.M)
