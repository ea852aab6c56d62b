"""Keras MLP estimators that behave as scikit-learn citizens."""

from estimators.build import build_model
from estimators.wrappers import KerasMLPClassifier, KerasMLPRegressor

__all__ = ["KerasMLPClassifier", "KerasMLPRegressor", "build_model"]
