"""tuning: hyperparameter studies for Keras MLP estimators, tracked in MLflow."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_study", "run_study"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import tuning` (and config errors) do not pay for importing TensorFlow.
    if name == "run_study":
        from tuning.study import run_study

        return run_study
    if name == "load_study":
        from tuning.config import load_study

        return load_study
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")
