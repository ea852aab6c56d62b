"""Trials per minute with 1 vs 2 workers (``--workers``) on a fixed small study; peak memory per worker.

    python benchmarks/parallel.py           # the measurement (a few minutes on 2 cores)
    python benchmarks/parallel.py --smoke   # tiny run that keeps this script working (used by the tests)
    python benchmarks/parallel.py --json parallel.json   # the measurements as JSON too

Each configuration runs the real CLI (``python -m tuning.run STUDY --workers N``) with its own Optuna
storage and MLflow store. Throughput is measured on the stored trials, over the stretch when all workers
were training: from the moment the last worker started its first trial to the moment the first worker
finished its last one (process start-up, TensorFlow import and the final export are left out; they are
paid once per worker, not per trial). Peak memory is each worker process's high-water mark (VmHWM),
sampled from /proc while it runs (Linux).

The machine's own ceiling is measured in the same run: a fixed pure-Python CPU loop in one process,
then in two at once, before and after the studies. On a virtual machine whose cores are shared with
other guests, two processes may get much less than twice the work of one done; the workers cannot beat
that, so the script prints the ratio both ways (``efficiency`` = workers' ratio / machine's ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.6


def study(n_trials: int, epochs: int) -> dict:
    """Fixed-cost trials: two hidden layers, no early stopping, a narrow space (every trial costs about
    the same, so worker counts compare fairly)."""
    return {
        "name": "parallel-bench",
        "dataset": {"source": "diabetes", "seed": 42},
        "recipe": "plain",  # the schema defaults: SGD, the best trial alone (no ensemble to export)
        # diabetes targets are in the hundreds: unscaled, SGD diverges and every trial fails (a study with no
        # completed trial exits 1), at a different epoch each time (not fixed-cost)
        "preprocessing": {"target_scaling": "standard"},
        "model": {"n_hidden": 2},
        "space": {
            "n_neurons": {"type": "int", "low": 32, "high": 64},
            "learning_rate": {"type": "float", "low": 1.0e-3, "high": 3.0e-3, "log": True},
        },
        "search": {"backend": "optuna", "n_trials": n_trials, "sampler": "random", "pruner": "none"},
        "training": {"epochs": epochs, "batch_size": 32, "early_stopping": {"enabled": False}},
    }


@dataclass
class Measurement:
    workers: int
    trials: int = 0
    per_minute: float = 0.0
    window_s: float = 0.0
    wall_s: float = 0.0
    trial_s: float = 0.0  # mean duration of one trial (grows when workers compete for the cores)
    peak_mb: dict[int, float] = field(default_factory=dict)  # worker pid -> peak RSS


# ---- process tree sampling (Linux /proc) ---------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(_children(current))
    return out


def _peak_mb(pid: int, launcher: int) -> float | None:
    """VmHWM of a worker, in MB: the launcher or a ``--worker`` process (None for others, e.g. a child
    forked but not yet exec'd, which still shows the launcher's command line; or when gone)."""
    try:
        if pid != launcher and b"--worker" not in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
            return None
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---- the machine's ceiling ----------------------------------------------------------------------------
BURN = "import time\nt = time.perf_counter()\ns = 0\nfor i in range({n}): s += i\nprint(time.perf_counter() - t)"


def _burn(processes: int, loops: int) -> float:
    """Wall seconds for ``processes`` copies of a fixed CPU loop started together."""
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", BURN.format(n=loops)], stdout=subprocess.DEVNULL)
             for _ in range(processes)]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - started


def machine_ratio(loops: int) -> float:
    """Work done per second by two CPU-bound processes over one (2.0 on two free cores)."""
    return 2 * _burn(1, loops) / _burn(2, loops)


# ---- one configuration -----------------------------------------------------------------------------
def run_workers(workers: int, study_file: Path, directory: Path) -> Measurement:
    """Run the study with ``workers`` processes; throughput from its Optuna storage, memory from /proc."""
    out = directory / f"w{workers}"
    cmd = [sys.executable, "-m", "tuning.run", str(study_file), "--workers", str(workers), "--quiet",
           "--output-dir", str(out), "--tracking-uri", f"sqlite:///{directory / f'mlflow-{workers}.db'}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT": "1"}  # keep the export short; not what is measured
    result = Measurement(workers)
    started = time.monotonic()
    with open(directory / f"w{workers}.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            for pid in _tree(proc.pid):
                mb = _peak_mb(pid, proc.pid)
                if mb is not None:
                    result.peak_mb[pid] = max(mb, result.peak_mb.get(pid, 0.0))
            time.sleep(0.2)
    result.wall_s = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{workers} worker(s) failed ({proc.returncode}):\n"
                         + (directory / f"w{workers}.log").read_text(errors="replace")[-3000:])
    result.trials, result.per_minute, result.window_s, result.trial_s = throughput(out / "optuna.db", "parallel-bench")
    return result


def throughput(db: Path, name: str) -> tuple[int, float, float, float]:
    """(counted trials, trials per minute while all workers trained, length of that window in seconds,
    mean trial duration in seconds)."""
    import optuna

    from tuning.search.store.budget import WORKER, counts_toward_budget

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    trials = [t for t in optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials
              if counts_toward_budget(t)]
    by_worker: dict[int, list] = {}
    for trial in trials:
        by_worker.setdefault(trial.user_attrs[WORKER]["pid"], []).append(trial)
    start = max(min(t.datetime_start for t in ts) for ts in by_worker.values())
    end = min(max(t.datetime_complete for t in ts) for ts in by_worker.values())
    inside = [t for t in trials if start < t.datetime_complete <= end]
    window = (end - start).total_seconds()
    if len(by_worker) == 1:  # one worker: all its trials, from its first start
        inside, window = trials, (max(t.datetime_complete for t in trials) - start).total_seconds()
    mean = sum(t.duration.total_seconds() for t in trials) / len(trials)
    return len(trials), 60.0 * len(inside) / window if window > 0 else 0.0, window, mean


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="two tiny trials per configuration: checks it runs")
    p.add_argument("--trials", type=int, default=24, help="trials per configuration (default 24)")
    p.add_argument("--epochs", type=int, default=40, help="epochs per trial (default 40)")
    p.add_argument("--json", type=Path, help="write the measurements (unrounded) to this JSON file")
    args = p.parse_args(argv)
    n_trials, epochs = (2, 2) if args.smoke else (args.trials, args.epochs)
    with tempfile.TemporaryDirectory(prefix="parallel-bench-") as tmp:
        directory = Path(tmp)
        study_file = directory / "study.yaml"
        study_file.write_text(yaml.safe_dump(study(n_trials, epochs), sort_keys=False))
        loops = 200_000 if args.smoke else 20_000_000
        ceiling = [machine_ratio(loops)]
        results = [run_workers(n, study_file, directory) for n in (1, 2)]
        ceiling.append(machine_ratio(loops))
    print(f"study: diabetes, {n_trials} trials of {epochs} epochs, {os.cpu_count()} cores"
          + (" (smoke run: numbers are not meaningful)" if args.smoke else ""))
    for r in results:
        peaks = ", ".join(f"{mb:.0f}" for mb in sorted(r.peak_mb.values()))
        print(f"{r.workers} worker(s): {r.trials} trials, {r.per_minute:.1f} trials/min over {r.window_s:.1f} s "
              f"of training, {r.trial_s:.2f} s per trial (wall {r.wall_s:.0f} s); peak memory per worker: {peaks} MB")
    ratio = results[1].per_minute / results[0].per_minute if results[0].per_minute else 0.0
    print(f"ratio 2 vs 1 workers: {ratio:.2f}x (target >= {TARGET}x)")
    machine = sum(ceiling) / len(ceiling)
    print(f"machine: two CPU-bound processes do {ceiling[0]:.2f}x / {ceiling[1]:.2f}x the work of one (before / "
          f"after the studies); efficiency of the workers against that: {ratio / machine:.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "n_trials": n_trials, "epochs": epochs, "cores": os.cpu_count(), "smoke": args.smoke,
            "runs": [{**asdict(r), "peak_mb": sorted(r.peak_mb.values())} for r in results],
            "ratio": ratio, "target": TARGET, "machine_ratio": ceiling, "efficiency": ratio / machine,
        }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
