"""tuning: hyperparameter studies for Keras MLP estimators, tracked in MLflow."""

import os
from typing import Any

# Read by TensorFlow once, when it loads, so set here, before any of our modules imports it. oneDNN's CPU
# kernels keep caches that grow with every new model a study trains (+52 MB over 90 trials with them,
# +9 MB without, benchmarks/memory.py) and are no faster for these small MLPs. A value already exported
# in the environment wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

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
