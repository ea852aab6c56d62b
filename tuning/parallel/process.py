"""Settings for a process that runs studies, applied by one explicit call (never by an import).

``python -m tuning.run``, ``python -m tuning.report``, the prediction command and the benchmarks call
:func:`configure_study_process` first thing; so can a user's own script or notebook before it calls
:func:`tuning.run_study`. Importing ``tuning`` or ``estimators`` changes nothing of the process.

What it does (each once per process; a value the user exported in the environment always wins):

* ``TF_ENABLE_ONEDNN_OPTS=0`` before TensorFlow loads: oneDNN's CPU kernels keep caches that grow with
  every new model a study trains (+52 MB over 90 trials with them, +9 MB without, benchmarks/memory.py)
  and are no faster for these small MLPs. TensorFlow reads it once, when it loads.
* Quiet libraries: Optuna's per-trial log lines, MLflow's, TensorFlow's and absl's Python loggers at
  ERROR, and a few known warnings (Optuna's "experimental" notes, MLflow's pickle-format notes) filtered:
  the progress display reports every trial.
* Heap freezing: after the first trial's garbage collection, ``gc.freeze()`` moves what survived (the
  libraries' own objects) out of the collector's sight, so the collection after each later trial walks
  only what trials created (milliseconds instead of 1-2 s).
* An exit hook that waits for tracking calls still queued (learning-curve pictures).
* With ``start_tensorflow=True``: TensorFlow imported and its devices initialised with file descriptor 2
  pointed at /dev/null, so the first sight of a run is not C++ start-up lines such as
  ``E0000 ... cuda_platform.cc:52] failed call to cuInit``. Devices are not hidden: a GPU is found and
  used as usual. Export ``TF_CPP_MIN_LOG_LEVEL`` (``0`` shows everything) to see those lines: then the
  quiet start steps aside. Every process a study starts does the same: ``--workers`` helpers run the
  command, and joblib's workers (folds, retraining) start with :func:`start_worker_quietly`
  (:func:`quiet_workers`); a marker variable tells them the log level came from a quiet start, not the user. Keras' own messages
  then go to its logger instead of stdout (a diverging fit prints nothing in any process: the estimators
  stop it silently, and the trial's record says it diverged).
"""

from __future__ import annotations

import atexit
import gc
import os
import sys

ONEDNN_VAR = "TF_ENABLE_ONEDNN_OPTS"
LOG_LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LOG_LEVEL = "2"  # TensorFlow's C++ INFO and WARNING lines off after the start; errors still show
#: set beside TF_CPP_MIN_LOG_LEVEL when a quiet start set that, not the user: processes started from a study
#: process (its --workers helpers, joblib's workers) inherit both and start quietly too
QUIET_START_VAR = "TUNING_QUIET_TF_START"

_state = {"configured": False, "freeze_heap": False, "heap_frozen": False}


def set_tensorflow_defaults() -> None:
    """The environment defaults TensorFlow reads when it loads (oneDNN off); exported values win."""
    if "tensorflow" in sys.modules and ONEDNN_VAR not in os.environ:
        import logging

        logging.getLogger("tuning").warning("TensorFlow was imported before configure_study_process(): "
                                            "%s=0 does not apply to this process", ONEDNN_VAR)
    os.environ.setdefault(ONEDNN_VAR, "0")


def quiet_libraries() -> None:
    """Our progress display reports every trial: silence the libraries' own per-trial chatter."""
    import logging
    import warnings

    import mlflow  # noqa: F401  (MLflow sets its loggers' levels when it loads: load it first)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*cloudpickle format.*")
    warnings.filterwarnings("ignore", message=".*pickle or cloudpickle.*")
    # a fitted network shipped between processes (members retrained in joblib's workers) arrives without
    # its optimizer's slot variables, which predicting and retraining from scratch do not need
    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer", category=UserWarning)
    for name in ("mlflow", "alembic", "tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


def heap_freezing() -> bool:
    """Whether this process asked for heap freezing (a trial runner shipped to a joblib worker keeps the
    answer of the process that built it)."""
    return _state["freeze_heap"]


def freeze_heap_once(wanted: bool | None = None) -> None:
    """Called by the trial runner after each trial's collection: ``gc.freeze()`` once, if ``wanted``
    (default: if this process asked for it, see the module docstring); nothing otherwise."""
    if (heap_freezing() if wanted is None else wanted) and not _state["heap_frozen"]:
        gc.freeze()
        _state["heap_frozen"] = True


def _flush_tracking() -> None:
    tracking = sys.modules.get("tuning.tracking.tracker")
    if tracking is not None:
        tracking.flush_writers()


def user_log_level() -> bool:
    """Whether the user exported ``TF_CPP_MIN_LOG_LEVEL`` (not a quiet start of this process or its parent)."""
    return LOG_LEVEL_VAR in os.environ and QUIET_START_VAR not in os.environ


def start_tensorflow_quietly() -> None:
    """Import TensorFlow and initialise its devices with fd 2 at /dev/null (unless the user exported
    ``TF_CPP_MIN_LOG_LEVEL``: then TensorFlow logs at that level, start-up lines included)."""
    if user_log_level() or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401

        quiet_keras()
        return
    os.environ[LOG_LEVEL_VAR] = QUIET_LOG_LEVEL
    os.environ[QUIET_START_VAR] = "1"
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery (the CUDA probe) happens here, quietly
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    quiet_keras()


def start_worker_quietly() -> None:
    """The start of a joblib worker process of a study (folds, retraining): the study-process settings and
    a quiet TensorFlow, before its first task is unpickled (which imports TensorFlow)."""
    configure_study_process(start_tensorflow=True)


def quiet_workers(n_jobs: int | None = None):
    """``with quiet_workers(): Parallel(...)``: joblib's process workers start as :func:`start_worker_quietly`
    says (loky, joblib's default process backend, with an initializer)."""
    from joblib import parallel_config

    return parallel_config(backend="loky", n_jobs=n_jobs, initializer=start_worker_quietly)


def quiet_keras() -> None:
    """Keras messages to its logger, not stdout: the progress display is the study's one voice."""
    import keras

    keras.config.disable_interactive_logging()


def configure_study_process(*, start_tensorflow: bool = False) -> None:
    """Apply the study-process settings of this module (idempotent). Call it before TensorFlow loads;
    ``start_tensorflow`` also imports TensorFlow quietly (after thread limits are set, if any)."""
    if not _state["configured"]:
        set_tensorflow_defaults()
        quiet_libraries()
        _state["freeze_heap"] = True
        atexit.register(_flush_tracking)
        _state["configured"] = True
    if start_tensorflow:
        start_tensorflow_quietly()
