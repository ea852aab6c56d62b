"""tuning: hyperparameter studies for Keras MLP estimators, tracked in MLflow.

Importing it changes nothing of the process (no environment variable, log level or hook): a study
process applies its settings with :func:`tuning.parallel.process.configure_study_process`, as the commands do.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["configure_study_process", "load_study", "run_study"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import tuning` (and config errors) do not pay for importing TensorFlow.
    if name == "run_study":
        from tuning.study import run_study

        return run_study
    if name == "load_study":
        from tuning.config.schema import load_study

        return load_study
    if name == "configure_study_process":
        from tuning.parallel.process import configure_study_process

        return configure_study_process
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")
