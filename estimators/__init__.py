"""Keras MLP estimators that behave as scikit-learn citizens."""

import os

# Before TensorFlow loads (it reads this once): oneDNN's CPU kernels keep caches that grow with every new
# model fitted in a process and are no faster for these MLPs (benchmarks/memory.py). An exported value wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from estimators.build import build_model  # noqa: E402
from estimators.wrappers import KerasMLPClassifier, KerasMLPRegressor  # noqa: E402

__all__ = ["KerasMLPClassifier", "KerasMLPRegressor", "build_model"]
