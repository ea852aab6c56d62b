"""New unfitted estimators for a study's trials: the study's fixed arguments and a trial's parameters.

The fixed arguments are decided once per study (:meth:`EstimatorMaker.for_study`): the study key of each row
of the hyperparameter table (``training.epochs`` -> ``epochs`` ...), ``standardize_target`` as the prepared
data decided it, the ``model:`` section, and for a user's model the facts the rows cannot show (the inputs'
columns, the vocabulary's size). A trial's values become arguments as the space says
(:func:`tuning.search.space.estimator_arguments`: per-unit lists, flags left out, a hypermodel's
``hp_values``). The maker is small and picklable: a runner's copy sent to joblib's workers takes it along.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import clone

from estimators import KerasMLPClassifier, KerasMLPRegressor, KerasModelClassifier, KerasModelRegressor
from estimators.common.hyperparams import for_estimator
from tuning.search.space import estimator_arguments

__all__ = ["EstimatorMaker"]


class EstimatorMaker:
    """``make(params)``: a new unfitted estimator of the study's kind (our MLP, or the user's factory in
    :class:`~estimators.KerasModelRegressor` / ``KerasModelClassifier``) with the fixed arguments and
    ``params``."""

    def __init__(self, task: str, fixed: dict[str, Any], factory: Any = None, space: dict[str, Any] | None = None,
                 flags: frozenset[str] = frozenset()) -> None:
        self.task, self.fixed, self.factory = task, dict(fixed), factory
        self.space, self.flags = dict(space or {}), frozenset(flags)

    @classmethod
    def for_study(cls, config: Any, task: str, data: Any, vocab_size: int | None = None) -> EstimatorMaker:
        """The maker of ``config``'s trials on the prepared ``data`` (its ``standardize_target`` and ``inputs``)."""
        fixed: dict[str, Any] = {}
        for param in for_estimator("regressor" if task == "regression" else "classifier"):
            if param.study:
                value = config.value_of(param.study)
                fixed[param.name] = param.study_value(value) if param.study_value else value
        if task == "regression":  # target_scaling: auto is decided on the training targets
            fixed["standardize_target"] = data.standardize_target
        fixed.update(config.model.fixed_params())
        factory = config.model.factory
        if factory is not None:
            if data.inputs:
                fixed["inputs"] = data.inputs
            if vocab_size is not None:  # the fact the rows cannot show: the vocabulary's size
                fixed["vocab_size"] = vocab_size
        return cls(task, fixed, factory, config.space, config.space_flags())

    @property
    def base_params(self) -> dict[str, Any]:
        """The fixed arguments every trial's estimator gets."""
        return dict(self.fixed)

    def arguments(self, params: dict[str, Any]) -> dict[str, Any]:
        """A trial's values as the estimator's arguments."""
        takes_hp = self.factory is not None and self.factory.takes_hp
        return estimator_arguments(self.space, self.flags, takes_hp, params)

    def __call__(self, params: dict[str, Any], portable: bool = False) -> Any:
        """A new unfitted estimator with the fixed arguments and ``params``. ``portable``: for joblib's worker
        processes, which cannot import a file factory's module by name: ``build`` is then the factory's path
        (``Factory.reference``); otherwise the function itself, which pickles by reference to its module."""
        arguments = {**self.fixed, **self.arguments(params)}
        if self.factory is not None:
            cls = KerasModelRegressor if self.task == "regression" else KerasModelClassifier
            build = self.factory.reference() if portable else self.factory.function
            return cls(build=build, **arguments)
        cls = KerasMLPRegressor if self.task == "regression" else KerasMLPClassifier
        return cls(**arguments)

    def portable_clone(self, estimator: Any) -> Any:
        """An unfitted clone of ``estimator`` that joblib's worker processes can build (a file factory by its
        path)."""
        twin = clone(estimator)
        return twin if self.factory is None else twin.set_params(build=self.factory.reference())
