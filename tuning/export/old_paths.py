"""Exports written before the estimators moved into folders: their pickles name a class by the module that
defined it then (``estimators.wrappers.KerasMLPRegressor``, ``estimators.targets.StandardizedTargetEncoder``
...). While such a pickle loads, each old module name it holds is an alias of the module that defines the
class now; the aliases are gone again afterwards. Pickles written since name the public
``estimators.<Name>`` and need none of this. Used by :func:`tuning.export.files.load_model` and by
``python -m tuning.predict`` for an MLflow model."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module

# the module an export written by an earlier layout names -> the module that defines its classes now
OLD_MODULES = {
    "estimators.wrappers": "estimators.mlp.estimators",
    "estimators.build": "estimators.mlp.build",
    "estimators.user_model": "estimators.own_model.estimators",
    "estimators.factory": "estimators.own_model.factory",
    "estimators.hyperparameters": "estimators.own_model.keras_tuner_hp",
    "estimators.hyperparams": "estimators.common.hyperparams",
    "estimators.stacked_scores": "estimators.stacked.scores",
    **{f"estimators.{name}": f"estimators.common.{name}" for name in (
        "callbacks", "data_pipeline", "embeddings", "ensemble", "inference", "parameters", "seeding", "targets",
        "validation")},
}


@contextmanager
def old_module_paths(pickled: bytes | None = None) -> Iterator[None]:
    """The old module names (those that occur in ``pickled``; all when None) as aliases of the new modules,
    for as long as the ``with`` block runs; names already imported are left alone."""
    added = []
    for old, new in OLD_MODULES.items():
        if old in sys.modules or (pickled is not None and old.encode() not in pickled):
            continue
        sys.modules[old] = import_module(new)
        added.append(old)
    try:
        yield
    finally:
        for old in added:
            sys.modules.pop(old, None)
