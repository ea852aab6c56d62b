"""Keras estimators that behave as scikit-learn citizens: our MLP, or the user's own model factory.

The estimators and ``build_model`` load on first use, so ``import estimators.hyperparams`` (the table of
hyperparameters, read when a study file is validated) does not import TensorFlow. Importing this package
changes no environment variable or other process-wide state.
"""

from typing import Any

__all__ = ["KerasMLPClassifier", "KerasMLPRegressor", "KerasModelClassifier", "KerasModelRegressor", "build_model"]


def __getattr__(name: str) -> Any:
    if name == "build_model":
        from estimators.build import build_model

        return build_model
    if name in ("KerasMLPClassifier", "KerasMLPRegressor"):
        from estimators import wrappers

        return getattr(wrappers, name)
    if name in ("KerasModelClassifier", "KerasModelRegressor"):
        from estimators import user_model

        return getattr(user_model, name)
    raise AttributeError(f"module 'estimators' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
