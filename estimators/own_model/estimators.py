"""scikit-learn estimators around the user's own Keras model factory.

``KerasModelRegressor(build=build_model, epochs=100, patience=10)`` takes any function that returns a Keras
model (Sequential, functional or subclassed; compiled or not). Its parameters are ``build``, the factory's
own arguments by their own names and defaults, the compile settings the factory does not take (optimizer,
learning rate, ... : used when the factory leaves the model uncompiled) and the training settings of the
hyperparameter table (epochs, batch size, early stopping, schedule, seed, validation fraction), so
``clone``, pickle, Pipelines and every scikit-learn search work with a factory copied from a tutorial:

    RandomizedSearchCV(KerasModelRegressor(build=build_model), {"n_neurons": randint(1, 100)})

Arguments named in :data:`estimators.own_model.factory.FACTS` (``input_shape``, ``n_features``, ``n_classes``,
``task``, ``seed``) are given from the data. The training loop, early stopping, seeding and float64
prediction are the MLP estimators' (``estimators.mlp.estimators``).
"""

from __future__ import annotations

import os
import textwrap
from typing import Any

import keras
import numpy as np
from scikeras.wrappers import KerasClassifier, KerasRegressor

from estimators.common import hyperparams
from estimators.common.parameters import init_params
from estimators.common.targets import OneHotTargets, is_one_hot_loss, logits_to_probabilities, takes_logits
from estimators.compat.keras import skip_single_replica_all_reduce
from estimators.mlp.build import make_optimizer
from estimators.mlp.estimators import _ClassifierParts, _KerasMLPMixin, _RegressorParts
from estimators.own_model.define_by_run import fit_through, user_fit
from estimators.own_model.factory import FACTS, HP_VALUES, Factory, FactoryError, resolve
from estimators.own_model.keras_tuner_hp import HyperParameters
from estimators.own_model.scikeras_args import compile_kwargs, meta_of, task_loss, task_metrics

__all__ = ["KerasModelClassifier", "KerasModelRegressor", "model_factory"]

_RESOLVED: dict[tuple[Any, ...], Factory] = {}


def _factory_of(build: Any) -> Factory:
    """The resolved factory of ``build``, cached (a file is imported once)."""
    # a relative path is relative to the working directory of the moment
    key = ("path", build, os.getcwd()) if isinstance(build, str) else ("object", id(build))
    if key not in _RESOLVED:
        _RESOLVED[key] = resolve(build)
    return _RESOLVED[key]


class _KerasModelMixin(_KerasMLPMixin):
    """Parameters from the factory's signature, and a model from the factory."""

    def _store(self, build, training: dict[str, Any], params: dict[str, Any]) -> None:
        """``__init__``: the factory, the training settings, then the model parameters given (the input
        mapping ``inputs`` among them)."""
        object.__setattr__(self, "_model_params", {})
        init_params(self, build=build, **training)
        for name, value in params.items():
            setattr(self, name, value)

    # ---- parameters: build, the factory's arguments, the compile settings it does not take, training ------
    @classmethod
    def _training_defaults(cls) -> dict[str, Any]:
        return {p.name: p.default for p in hyperparams.training_knobs(cls._kind())}

    @classmethod
    def _kind(cls) -> str:
        return "regressor" if cls._task == "regression" else "classifier"

    def _factory(self) -> Factory | None:
        """The resolved factory (a bad ``build`` raises :class:`FactoryError`, at fit)."""
        function = self.__dict__.get("_build_function")  # a ``build`` string's function, kept by pickling
        if function is not None:
            return _factory_of(function)
        return None if self.build is None else _factory_of(self.build)

    def _known_factory(self) -> Factory | None:
        """The resolved factory, or None when ``build`` is missing or does not resolve: parameters can still
        be read and set (scikit-learn's contract), and fit says what is wrong with ``build``."""
        try:
            return self._factory()
        except FactoryError:
            return None

    # ---- pickling: a ``build`` string also travels as its function, by reference ---------------------------
    def __getstate__(self) -> dict[str, Any]:
        """The state, led by the factory function when a fitted estimator's ``build`` is a string
        (``"file.py:function"``): the unpickled estimator then needs the factory's module (imported first, so
        that custom layers it registers are known before the Keras model is rebuilt), not the file at that
        path, which another process or machine may not have (or may have under a module name already taken).
        An unfitted one travels with ``build`` alone: a path is how joblib's workers on this machine import
        a file's factory (their processes cannot import its module by name)."""
        state = super().__getstate__()
        state.pop("_build_function", None)
        if isinstance(self.build, str) and "model_" in self.__dict__:
            try:
                state = {"_build_function": _factory_of(self.build).function, **state}
            except FactoryError:
                pass
        return state

    def _model_defaults(self) -> dict[str, Any]:
        """The factory's arguments with their defaults, then the compile settings it does not take."""
        factory = self._known_factory()
        out = {} if factory is None else factory.defaults()
        out["inputs"] = None  # the input mapping: ours, never a factory argument (a reserved name)
        for knob in hyperparams.compile_knobs():
            if factory is None or knob.name not in factory.argument_names:
                out[knob.name] = knob.default
        return out

    def _model_names(self) -> set[str]:
        factory = self._known_factory()
        names = set(self._model_defaults()) | set(self._model_params)
        return names if factory is None else names | set(factory.argument_names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """``build``, the factory's arguments (with its defaults), the compile settings it does not take and
        the training settings."""
        out = {"build": self.build}
        out.update({**self._model_defaults(), **self._model_params})
        out.update({name: getattr(self, name) for name in self._training_defaults()})
        return out

    def set_params(self, **params):
        valid = set(self.get_params()) | self._model_names() | set(GIVABLE_FACTS)
        checkable = self._known_factory() is not None
        for name, value in params.items():
            if checkable and name not in valid and not self._accepts_any(name):
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}: not an argument of "
                    f"{self._factory_label()} nor a training setting. Valid parameters are: {sorted(valid)!r}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        """``KerasModelRegressor(build=handson.build_model, n_neurons=64)``: the parameters not at their default."""
        defaults = {"build": None, **self._model_defaults(), **self._training_defaults()}
        shown = []
        for name, value in self.get_params().items():
            if name in defaults and repr(value) == repr(defaults[name]):
                continue
            if callable(value) and hasattr(value, "__qualname__"):
                shown.append(f"{name}={value.__module__}.{value.__qualname__}")
            else:
                shown.append(f"{name}={value!r}")
        text = f"{type(self).__name__}({', '.join(shown)})"
        return text if len(text) <= N_CHAR_MAX else text[: N_CHAR_MAX - 4] + "...)"

    def _accepts_any(self, name: str) -> bool:
        factory = self._known_factory()
        return factory is not None and factory.takes(name)

    def _factory_label(self) -> str:
        factory = self._known_factory()
        return "the factory" if factory is None else factory.label

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "build":
            self.__dict__.pop("_build_function", None)  # a new factory: the unpickled one's function is stale
        if name.startswith("_") or name.endswith("_") or name == "build" or name in self._training_defaults():
            object.__setattr__(self, name, value)
            return
        self.__dict__["_model_params"][name] = value

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: a model parameter, given or at its default
        if name.startswith("_") or name.endswith("_"):
            raise AttributeError(name)
        params = self.__dict__.get("_model_params", {})
        if name in params:
            return params[name]
        defaults = self._model_defaults()
        if name in defaults:
            return defaults[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---- checks ----------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.build is None:
            raise ValueError(
                f"{type(self).__name__} needs build: a function that returns a Keras model, "
                "'package.module:function' or 'path/to/file.py:function'"
            )
        factory = self._factory()
        given_facts = sorted(set(self._model_params) & set(FACTS) - set(GIVABLE_FACTS))
        if given_facts:
            raise ValueError(
                f"{', '.join(given_facts)} {'is' if len(given_facts) == 1 else 'are'} given to {factory.label} from "
                "the data; do not set it on the estimator"
            )
        vocab = self._model_params.get("vocab_size")
        if vocab is not None and (isinstance(vocab, bool) or not isinstance(vocab, (int, np.integer)) or vocab < 1):
            raise ValueError(f"vocab_size must be an integer >= 1 (token ids 0 to vocab_size - 1), got {vocab!r}")
        _check_inputs(self.inputs)
        for knob in hyperparams.training_knobs(self._kind()):
            knob.check(getattr(self, knob.name))
        for knob in hyperparams.compile_knobs():
            if not factory.takes(knob.name):
                knob.check(getattr(self, knob.name))

    # ---- the model -------------------------------------------------------------------------------------
    def _keras_build_fn(self):
        factory = self._factory()
        arguments = {name: value for name, value in self.get_params().items() if factory.takes(name)}
        model = factory.build(arguments, {**self._facts(), **self._scikeras_facts(factory)})
        self._check_input_names(model)
        if model.compiled:
            # the user's optimizer, kept as compiled; the fix that stops every fit leaking its graph applies
            skip_single_replica_all_reduce(model.optimizer)
        else:
            model.compile(
                loss=self._compile_loss(model),
                optimizer=self._optimizer(),
                metrics=self._compile_metrics(),
                steps_per_execution=int(self._knob("steps_per_execution")),
            )
        if self._task != "regression" and is_one_hot_loss(model.loss):
            self.target_encoder_ = OneHotTargets(self.target_encoder_, int(self.n_classes_))
        return model

    def _compile_loss(self, model: Any = None) -> Any:
        """The estimator's ``loss=`` (scikeras'), else the task's: read off the model's output when it is
        built, else from the classes (what ``compile_kwargs`` gives before the model exists)."""
        given = self._model_params.get("loss")
        if given:
            return given
        if model is not None:
            return self._default_loss(model)
        return task_loss(self._model_task(), getattr(self, "n_classes_", None))

    def _compile_metrics(self) -> Any:
        """The estimator's ``metrics=`` (scikeras'), else accuracy for a classifier and none for a regressor."""
        return self._model_params.get("metrics", task_metrics(self._task))

    def _optimizer(self) -> keras.optimizers.Optimizer:
        return make_optimizer(self._knob("optimizer"), float(self._knob("learning_rate")),
                              float(self._knob("momentum")), self._knob("weight_decay"))

    def _scikeras_facts(self, factory: Factory) -> dict[str, Any]:
        """scikeras' ``meta`` and ``compile_kwargs``, for a factory that takes them
        (:mod:`estimators.own_model.scikeras_args`)."""
        out: dict[str, Any] = {}
        if "meta" in factory.facts:
            out["meta"] = meta_of(self)
        if "compile_kwargs" in factory.facts:
            out["compile_kwargs"] = compile_kwargs(self._optimizer(), self._compile_loss(), self._compile_metrics())
        return out

    def _facts(self) -> dict[str, Any]:
        """What the factory is given from the data (:data:`estimators.own_model.factory.FACTS`)."""
        shape = tuple(int(d) for d in self.X_shape_[1:])
        vocab = self._model_params.get("vocab_size")
        if vocab is None:
            vocab = self._tokens  # integer rows: the largest id + 1 (None for other rows)
        facts = {
            "input_shape": shape if not self.inputs else {n: (len(c),) for n, c in self.inputs.items()},
            "n_features": int(np.prod(shape)) if not self.inputs else {n: len(c) for n, c in self.inputs.items()},
            "n_classes": getattr(self, "n_classes_", None),
            "task": self._model_task(),
            "seed": self._fit_extras[2],
            "vocab_size": None if vocab is None else int(vocab),
            "sequence_length": shape[0] if len(shape) == 1 and vocab is not None else None,
        }
        return facts

    def fit(self, X, y, sample_weight=None, *, validation_data=None, callbacks=None):
        # token ids (integer rows): the largest id tells vocab_size when it is not given
        object.__setattr__(self, "_tokens", _token_count(X))
        return super().fit(X, y, sample_weight, validation_data=validation_data, callbacks=callbacks)

    _tokens: int | None = None

    def _fit_network(self, rows, seed, epochs_done=0, **settings):
        """Through a hypermodel class's ``fit`` when it has one (``define_by_run.fit_through``), else ours."""
        factory = self._factory()
        fit = user_fit(factory.function, factory.hp_style) if factory.takes_hp else None
        if fit is None:
            return super()._fit_network(rows, seed, epochs_done, **settings)
        hp = HyperParameters(values=getattr(self, HP_VALUES))
        return fit_through(fit, hp, self.model_, rows, int(self.batch_size), seed, factory.label, epochs_done,
                           **settings)

    def _network_input(self, X):
        """The rows as the model takes them: with ``inputs``, a dict of column groups keyed by input name."""
        if not self.inputs:
            return X
        X = np.asarray(X)
        return {name: X[:, list(columns)] for name, columns in self.inputs.items()}

    def _check_input_names(self, model) -> None:
        """With ``inputs``: the model's input names are exactly its keys."""
        if not self.inputs:
            return
        names = [t.name for t in getattr(model, "inputs", None) or []]
        if names and sorted(names) != sorted(self.inputs):
            raise ValueError(input_names_problem(self._factory().label, names, list(self.inputs)))

    def _knob(self, name: str) -> Any:
        return hyperparams.HYPERPARAMS[name].coerce(getattr(self, name))

    def _default_loss(self, model) -> str:
        """The task's loss for a model the factory left uncompiled (its output gives probabilities)."""
        if self._task == "regression":
            return "mse"
        units = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else None
        return "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"

    def _as_probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """A classifier's outputs as probabilities: a sigmoid / softmax applied when the model was compiled
        with a loss that takes logits (``from_logits=True``, as TensorFlow's tutorials compile)."""
        if self._task != "regression" and takes_logits(getattr(self.model_, "loss", None)):
            return logits_to_probabilities(outputs)
        return outputs

    def _initial_learning_rate(self) -> float:
        rate = self.model_.optimizer.learning_rate
        return float(keras.ops.convert_to_numpy(rate))


def _doc(kind: str) -> str:
    training = "\n".join(f"    {p.name} : default={p.default!r}\n        {p.doc}."
                         for p in hyperparams.training_knobs(kind))
    compiling = "\n".join(f"    {p.name} : default={p.default!r}\n        {p.doc}."
                          for p in hyperparams.compile_knobs())
    return textwrap.dedent(f"""
    Parameters
    ----------
    build : callable or str
        A function returning a Keras model, ``"package.module:function"`` or ``"path/to/file.py:function"``.
    inputs : dict of str to list of int, default=None
        For a model with several named ``keras.Input``s: each input's name and the columns of X (0-based)
        it takes, e.g. ``{{"wide": [0, 1, 2, 3, 4], "deep": [2, 3, 4, 5, 6, 7]}}``; the model is given a dict
        of arrays keyed by input name, ``input_shape`` / ``n_features`` a dict by input name.
    **arguments
        The factory's own arguments, by their names (``get_params`` lists them with its defaults). Arguments
        named {', '.join(FACTS)} are given from the data.
    Compile settings (used when the factory returns an uncompiled model; a factory argument of the same
    name takes their place):
{compiling}
    Training settings:
{training}
    """)


#: facts the estimator may be given (the data cannot always show them): the vocabulary of token ids
GIVABLE_FACTS = ("vocab_size",)


def input_names_problem(label: str, model_names: list[str], mapped: list[str]) -> str:
    """The message for a model whose input names are not the keys of ``inputs``."""
    return (f"{label} returned a model whose inputs are named {sorted(model_names)}, but inputs maps "
            f"{sorted(mapped)}: name each keras.Input(name=...) as a key of inputs (model.inputs in a study)")


def _check_inputs(inputs: Any) -> None:
    if inputs is None:
        return
    if not isinstance(inputs, dict) or not inputs or not all(
            isinstance(k, str) and isinstance(v, (list, tuple)) and v
            and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in v)
            for k, v in inputs.items()):
        raise ValueError("inputs must map each Keras input name to a non-empty list of column indices of X, "
                         f"e.g. {{'wide': [0, 1, 2], 'deep': [2, 3, 4]}}; got {inputs!r}")


def _token_count(X) -> int | None:
    """For integer rows of one dimension (token ids): the largest id + 1; else None."""
    if hasattr(X, "dtypes") and hasattr(X, "to_numpy"):
        X = X.to_numpy()
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind not in "iu" or X.size == 0:
        return None
    return int(X.max()) + 1


class KerasModelRegressor(_RegressorParts, _KerasModelMixin, KerasRegressor):
    __doc__ = "Your own Keras model as a scikit-learn regressor.\n" + _doc("regressor")

    def __init__(
        self,
        build=None,
        *,
        epochs=100,
        batch_size=32,
        lr_schedule="constant",
        early_stopping=True,
        patience=10,
        min_delta=0.0,
        restore_best_weights=True,
        validation_fraction=0.1,
        random_state=None,
        verbose=0,
        standardize_target=False,
        **params,
    ):
        training = {k: v for k, v in locals().items() if k not in ("self", "__class__", "build", "params")}
        self._store(build, training, params)


class KerasModelClassifier(_ClassifierParts, _KerasModelMixin, KerasClassifier):
    __doc__ = ("Your own Keras model as a scikit-learn classifier (binary or multi-class; a one-unit sigmoid "
               "output gets 0/1 targets, a softmax output class codes, or one-hot with a categorical loss).\n"
               + _doc("classifier"))

    def __init__(
        self,
        build=None,
        *,
        epochs=100,
        batch_size=32,
        lr_schedule="constant",
        early_stopping=True,
        patience=10,
        min_delta=0.0,
        restore_best_weights=True,
        validation_fraction=0.1,
        random_state=None,
        verbose=0,
        **params,
    ):
        training = {k: v for k, v in locals().items() if k not in ("self", "__class__", "build", "params")}
        self._store(build, training, params)


def model_factory(estimator: Any) -> Factory | None:
    """The factory of a user's-model estimator (None for any other estimator, or without ``build``)."""
    if isinstance(estimator, _KerasModelMixin) and estimator.build is not None:
        return _factory_of(estimator.build)
    return None


# pickled (in an export) as the public ``estimators.<Name>``, whichever module defines it: estimators/__init__.py
KerasModelRegressor.__module__ = KerasModelClassifier.__module__ = "estimators"
