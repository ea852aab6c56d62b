"""The suite's warm start of ``python`` commands (tests/warm_python.py) behaves as a cold ``python`` would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests import warm_python

# What a command can see of how it was started: printed as JSON, compared between a cold and a warm start.
_LOOK = r"""
import atexit, json, os, sys, threading, time
def later():
    time.sleep(0.3)
    print("thread done", flush=True)
threading.Thread(target=later).start()
atexit.register(lambda: print("exit hook", flush=True))
try:
    import usermod
    found = usermod.VALUE
except ImportError:
    found = None
print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(), "env": os.environ.get("LOOK"),
                  "name": __name__, "usermod": found, "stdin": sys.stdin.read()}))
print("to stderr", file=sys.stderr)
sys.exit(int(os.environ.get("LOOK_EXIT", "0")))
"""


@pytest.fixture()
def layout(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "usermod.py").write_text("VALUE = 7\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "look.py").write_text(_LOOK)
    (tmp_path / "look.py").write_text(_LOOK)
    (tmp_path / "work").mkdir()
    return tmp_path


def _both(args, **kwargs):
    cold = subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)
    warm = warm_python.run(args, timeout=120, **kwargs)
    return cold, warm


@pytest.mark.parametrize("form", ["script", "module", "code"])
def test_a_warm_start_sees_what_a_cold_one_does(layout, form):
    args = {"script": [str(layout / "look.py")], "module": ["-m", "pkg.look"], "code": ["-c", _LOOK]}[form]
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for pythonpath, code in ((None, "0"), (str(layout / "lib"), "3")):
        env = {**base, "LOOK": "yes", "LOOK_EXIT": code, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
        cwd = layout if form == "module" else layout / "work"
        cold, warm = _both([sys.executable, *args, "a b", "--flag"], cwd=cwd, env=env, input="rows\n")
        assert (warm.returncode, warm.stdout, warm.stderr) == (cold.returncode, cold.stdout, cold.stderr)
        seen = json.loads(warm.stdout.splitlines()[0])
        assert seen["argv"][1:] == ["a b", "--flag"] and seen["env"] == "yes" and seen["stdin"] == "rows\n"
        assert seen["usermod"] == (7 if pythonpath else None) and warm.returncode == int(code)
        assert warm.stdout.splitlines()[1:] == ["thread done", "exit hook"]  # threads joined, then exit hooks


def test_an_exception_and_ctrl_c_end_as_in_a_cold_python(tmp_path):
    for code in ("raise ValueError('boom')", "raise KeyboardInterrupt"):
        cold, warm = _both([sys.executable, "-c", code], cwd=tmp_path)
        assert warm.returncode == cold.returncode != 0
        assert warm.stderr.splitlines()[-1] == cold.stderr.splitlines()[-1]


def test_a_warm_process_can_be_killed_and_polled(tmp_path):
    out = tmp_path / "out.txt"
    process = warm_python.popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                                cwd=tmp_path, stdout=out)
    deadline = time.monotonic() + 60
    while "up" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.2)
    process.kill()
    assert process.wait(timeout=30) == -signal.SIGKILL and process.poll() == -signal.SIGKILL


def test_a_warm_command_has_the_libraries_loaded_and_runs_our_cli(tmp_path):
    done = warm_python.run([sys.executable, "-c", "import sys; print('tensorflow' in sys.modules)"], cwd=tmp_path)
    assert done.stdout.strip() == "True"  # else nothing is saved
    done = warm_python.run([sys.executable, "-m", "tuning.run", str(tmp_path / "missing.yaml")], cwd=tmp_path)
    assert done.returncode == 2 and "missing.yaml" in done.stderr and "Traceback" not in done.stderr


def test_other_commands_start_cold(tmp_path):
    done = warm_python.run([sys.executable, "-X", "utf8", "-c", "import sys; print('tensorflow' in sys.modules)"],
                           cwd=tmp_path)
    assert done.stdout.strip() == "False"


def test_a_studys_workers_start_warm_unless_the_test_says_cold(tmp_path):
    from tuning.parallel import workers

    assert workers.subprocess.Popen is not subprocess.Popen  # tests/conftest.py: warm_study_workers
    assert workers.subprocess.TimeoutExpired is subprocess.TimeoutExpired  # the rest of the module as it is
    process = workers.subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(5)"], env=dict(os.environ))
    assert isinstance(process, warm_python.WarmProcess) and process.wait(timeout=60) == 5


@pytest.mark.cold_workers
def test_a_test_marked_cold_workers_gets_the_real_popen():
    from tuning.parallel import workers

    assert workers.subprocess.Popen is subprocess.Popen
