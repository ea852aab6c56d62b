"""Keras estimators that behave as scikit-learn citizens: our MLP, or the user's own model factory.

The folders: ``common/`` (the table of hyperparameters and the pieces both estimators share), ``compat/``
(other libraries' internals), ``mlp/`` (our MLP), ``own_model/`` (the user's model, the ``hp`` adapter of a
hypermodel), ``stacked/`` (stacked members). The public names below are imported from here.

The estimators and ``build_model`` load on first use, so ``import estimators.common.hyperparams`` (the table of
hyperparameters, read when a study file is validated) does not import TensorFlow. Importing this package
changes no environment variable or other process-wide state.

The classes a fitted export pickles are named ``estimators.<Name>`` (their ``__module__``), so an export
refers to this package's public names and not to the module a class lives in.
"""

from importlib import import_module
from typing import Any

# public name -> the module that defines it
_HOMES = {
    "build_model": "estimators.mlp.build",
    "KerasMLPClassifier": "estimators.mlp.estimators",
    "KerasMLPRegressor": "estimators.mlp.estimators",
    "KerasModelClassifier": "estimators.own_model.estimators",
    "KerasModelRegressor": "estimators.own_model.estimators",
    "AveragingClassifier": "estimators.common.ensemble",
    "AveragingRegressor": "estimators.common.ensemble",
    "OneHotTargets": "estimators.common.targets",
    "StandardizedTargetEncoder": "estimators.common.targets",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'estimators' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
