"""The one table of hyperparameters: type, bounds, default, estimators, study keys and doc line of each.

Everything that checks or lists a hyperparameter reads it from `HYPERPARAMS`: the estimators' parameter
checks, ``build_model``'s checks, the study file's ``space`` and ``model`` sections, the trial runner's
mapping of study settings to estimator arguments and the table of docs/estimators.md. Pure Python: importing it loads
neither TensorFlow nor scikit-learn. Adding a hyperparameter: a row here, the argument in ``build_model``
(for a model knob) and both estimators' ``__init__`` (tests check they match the table).
"""

from __future__ import annotations

import math
import numbers
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "HYPERPARAMS",
    "OPTIMIZERS",
    "HyperParam",
    "build_knobs",
    "check_params",
    "layer_widths",
    "compile_knobs",
    "for_estimator",
    "markdown_table",
    "model_settable",
    "numpydoc",
    "tunable",
    "training_knobs",
    "tunable_line",
]

Kind = Literal["int", "float", "str", "bool", "any"]
Estimators = Literal["both", "regressor", "classifier"]

#: Optimizer names ``build_model`` knows (the one place they are written).
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "rmsprop", "nadam", "adamw")


@dataclass(frozen=True)
class HyperParam:
    """One estimator argument. ``kind`` ``any`` is not checked (seeds, verbosity)."""

    name: str
    kind: Kind
    default: Any
    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    estimators: Estimators = "both"
    tunable: bool = False  #: allowed as a key of a study's ``space``
    model: bool = False  #: settable in a study's ``model`` section
    build: bool = False  #: an argument of ``build_model`` (a model knob)
    #: used to compile a user's own model that its factory left uncompiled (``KerasModelRegressor``); a factory
    #: argument of the same name takes its place (the factory compiles with it)
    compile: bool = False
    #: where a study sets it otherwise (dotted key of the study file), and how that value maps to the argument
    study: str | None = None
    study_value: Callable[[Any], Any] | None = None
    aliases: tuple[str, ...] = ()  #: names users try instead ("did you mean ...?" in study files)
    doc_type: str | None = None  #: the type in docstrings, when ``kind`` does not say it
    #: also takes a list, one value per hidden layer (its length must be ``n_hidden``)
    per_layer: bool = False

    def applies_to(self, estimator: str) -> bool:
        """Whether the ``regressor`` / ``classifier`` has this argument."""
        return self.estimators in ("both", estimator)

    # ---- checks ---------------------------------------------------------------------------------
    def problem(self, value: Any) -> str | None:
        """Why a study-file value is refused (exact choices), or None; read as ``name: <problem>``."""
        if self.per_layer and isinstance(value, list | tuple):
            return next(filter(None, (self.problem(v) for v in value)), None)
        if self.kind == "any":
            return None
        if value is None:
            return None if self.nullable else "null is not a valid value"
        if self.kind in ("str", "bool"):
            expected = str if self.kind == "str" else bool
            if not isinstance(value, expected):
                return f"expected a {'string' if self.kind == 'str' else 'boolean'}, got {value!r}"
            if self.choices and value not in self.choices:
                return f"{value!r} is not one of {', '.join(self.choices)}"
            return None
        number = (int,) if self.kind == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, number):
            return f"expected {'an integer' if self.kind == 'int' else 'a number'}, got {value!r}"
        for op, bound in self._bounds():
            if not _holds(op, value, bound):
                return f"must be {op} {bound}, got {value}"
        return None

    def check(self, value: Any) -> None:
        """Raise ``ValueError("<name> must be <requirement>, got <value>")`` for an argument the estimator refuses.

        Choices are compared case-insensitively (``"Adam"`` is Adam); a string argument without choices
        is left to Keras (an activation may also be a callable).
        """
        if not self._accepts(value):
            raise ValueError(f"{self.name} must be {self.requirement()}, got {value!r}")

    def _accepts(self, value: Any) -> bool:
        if self.per_layer and isinstance(value, list | tuple):
            return all(self._accepts(v) and not isinstance(v, list | tuple) for v in value)
        if self.kind == "any":
            return True
        if value is None:
            return self.nullable
        if self.kind == "str" and not self.choices:
            return True
        if self.kind == "str":
            return isinstance(value, str) and value.lower() in self.choices  # type: ignore[operator]
        if self.kind == "bool":
            return isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b"
        if isinstance(value, bool):
            return False
        if self.kind == "int" and not isinstance(value, numbers.Integral):
            return False
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        return all(_holds(op, value, bound) for op, bound in self._bounds())

    def requirement(self) -> str:
        """What the estimator accepts, e.g. ``an integer >= 0``, ``in [0, 1)``, ``one of (...)``."""
        if self.kind == "str":
            text = f"one of {self.choices}" if self.choices else "a string"
        elif self.kind == "bool":
            text = "a boolean"
        elif self.kind == "any":
            text = "anything"
        else:
            what = "an integer" if self.kind == "int" else "a finite number"
            bounds = self.bounds_text()
            text = bounds if self.kind == "float" and bounds.startswith("in ") else f"{what} {bounds}".strip()
        text += " or None" if self.nullable else ""
        return text + (" or a list of them (one per hidden layer)" if self.per_layer else "")

    def bounds_text(self) -> str:
        """The bounds as ``>= 0``, ``> 0`` or an interval ``in [0, 1)``; "" when unbounded."""
        low = [(op, b) for op, b in self._bounds() if op in (">=", ">")]
        high = [(op, b) for op, b in self._bounds() if op in ("<=", "<")]
        if low and high:
            return f"in {'[' if low[0][0] == '>=' else '('}{low[0][1]}, {high[0][1]}{']' if high[0][0] == '<=' else ')'}"
        return " ".join(f"{op} {b}" for op, b in self._bounds())

    def _bounds(self) -> list[tuple[str, float]]:
        pairs = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        return [(op, bound) for op, bound in pairs if bound is not None]

    def coerce(self, value: Any) -> Any:
        """Plain ``int`` / ``float`` for Keras (numpy scalars from a search become Python numbers)."""
        if self.per_layer and isinstance(value, list | tuple):
            return [self.coerce(v) for v in value]
        if value is None or self.kind not in ("int", "float"):
            return value
        return int(value) if self.kind == "int" else float(value)


def _holds(op: str, value: float, bound: float) -> bool:
    return {">=": value >= bound, ">": value > bound, "<=": value <= bound, "<": value < bound}[op]


def _rows(*params: HyperParam) -> dict[str, HyperParam]:
    return {p.name: p for p in params}


HYPERPARAMS: dict[str, HyperParam] = _rows(
    # ---- the model (build_model's knobs)
    HyperParam("n_hidden", "int", 1, "hidden Dense layers (`0` is a linear / logistic model)", ge=0,
               tunable=True, model=True, build=True, aliases=("layers", "hidden_layers")),
    HyperParam("n_neurons", "int", 30, "units per hidden layer, or a list of them, one per hidden layer (a "
               "funnel such as `[128, 64, 32]`; its length must be `n_hidden`)", ge=1, tunable=True, model=True,
               build=True, aliases=("units", "neurons"), per_layer=True, doc_type="int or list of int"),
    HyperParam("learning_rate", "float", 3e-3, "the optimizer's learning rate", gt=0, tunable=True, model=True,
               build=True, compile=True, aliases=("lr",)),
    HyperParam("activation", "str", "relu", "hidden-layer activation (a Keras name)", nullable=True,
               tunable=True, model=True, build=True),
    HyperParam("optimizer", "str", "sgd", "the Keras optimizer", choices=OPTIMIZERS, tunable=True, model=True,
               build=True, compile=True),
    HyperParam("momentum", "float", 0.0, "SGD momentum", ge=0, lt=1, tunable=True, model=True, build=True, compile=True),
    HyperParam("dropout", "float", 0.0, "dropout rate after each hidden layer", ge=0, lt=1, tunable=True,
               model=True, build=True),
    HyperParam("weight_decay", "float", None, "optimizer weight decay (None: the optimizer's default, 0.004 for "
               "adamw)", ge=0, nullable=True, tunable=True, model=True, build=True, compile=True, aliases=("l2",)),
    HyperParam("numeric_embedding", "str", "none", "`periodic`: each feature goes through trainable sines and "
               "cosines, then a linear map and ReLU, before the hidden layers (PLR embeddings, Gorishniy et al. "
               "2022); `none`: the features enter the first hidden layer as they are",
               choices=("none", "periodic"), tunable=True, model=True, build=True, aliases=("embedding",)),
    HyperParam("n_frequencies", "int", 16, "periodic embedding: frequencies per feature", ge=1, tunable=True,
               model=True, build=True),
    HyperParam("frequency_scale", "float", 0.1, "periodic embedding: standard deviation of the initial "
               "frequencies (finer patterns when larger; tune on a log scale, about 0.01-1)", gt=0,
               tunable=True, model=True, build=True, aliases=("sigma",)),
    HyperParam("embedding_dim", "int", 16, "periodic embedding: units per feature", ge=1, tunable=True,
               model=True, build=True),
    HyperParam("members", "int", 1, "an ensemble inside one model (TabM, Gorishniy et al. 2025): `k` members "
               "share every Dense kernel, each with its own rank-1 scalings and biases (BatchEnsemble); each "
               "member trains on its own loss, predictions average the members (probabilities for a classifier); "
               "`1`: one plain MLP", ge=1, tunable=True, model=True, build=True, aliases=("ensemble_size", "k")),
    HyperParam("feature_scaling", "bool", False, "each feature is first multiplied by its own trainable weight, "
               "initially 1 (RealMLP's scale layer, Holzmüller et al. 2024), before the periodic embedding if any",
               tunable=True, model=True, build=True, aliases=("scale_layer",)),
    # ---- training
    HyperParam("epochs", "int", 100, "maximum number of epochs", ge=1, tunable=True, study="training.epochs"),
    HyperParam("batch_size", "int", 32, "rows per gradient step", ge=1, tunable=True,
               study="training.batch_size", aliases=("batch",)),
    HyperParam("lr_schedule", "str", "constant", "`plateau`: halve the learning rate after `patience // 2` "
               "epochs without improvement of the monitored loss; `cosine`: decay it to 0 along a half cosine "
               "over `epochs`; `constant`: leave it", choices=("constant", "plateau", "cosine"), tunable=True,
               model=True, aliases=("schedule",)),
    HyperParam("early_stopping", "bool", True, "Keras EarlyStopping on `val_loss`",
               study="training.early_stopping.enabled"),
    HyperParam("patience", "int", 10, "epochs without improvement before early stopping", ge=0, tunable=True,
               study="training.early_stopping.patience"),
    HyperParam("min_delta", "float", 0.0, "smallest change that counts as an improvement", ge=0,
               study="training.early_stopping.min_delta"),
    HyperParam("restore_best_weights", "bool", True, "end with the weights of the best epoch",
               study="training.early_stopping.restore_best_weights"),
    HyperParam("validation_fraction", "float", 0.1, "fraction held out of the data `fit` receives (stratified for "
               "classifiers), so inside a Pipeline the validation rows went through the same preprocessing; "
               "ignored when `fit(X, y, validation_data=(Xv, yv))` is given; `None` trains on everything",
               ge=0, lt=1, nullable=True, study="dataset.valid_size", study_value=lambda _: None),
    HyperParam("steps_per_execution", "int", 64, "training steps per TensorFlow call: the main speed knob for "
               "small models on CPU", ge=1, build=True, compile=True),
    HyperParam("random_state", "any", None, "seeds weights, shuffling and the hold-out; the same seed gives "
               "identical predictions across fits and processes, and leaves no global TensorFlow state behind",
               study="search.seed", doc_type="int, RandomState or None"),
    HyperParam("verbose", "any", 0, "Keras verbosity", doc_type="int"),
    HyperParam("standardize_target", "bool", False, "train on standardised y, predict in the original units "
               "(the Keras losses in `history_` are in standardised units)",
               estimators="regressor", study="preprocessing.target_scaling",
               study_value=lambda scaling: scaling == "standard"),
)  # fmt: skip


def for_estimator(estimator: str, table: Mapping[str, HyperParam] | None = None) -> list[HyperParam]:
    """The arguments of the ``regressor`` or ``classifier``, in ``__init__`` order."""
    return [p for p in (table or HYPERPARAMS).values() if p.applies_to(estimator)]


def tunable() -> frozenset[str]:
    """Names allowed as keys of a study's ``space``."""
    return frozenset(p.name for p in HYPERPARAMS.values() if p.tunable)


def model_settable() -> list[HyperParam]:
    """Hyperparameters a study may fix in its ``model`` section."""
    return [p for p in HYPERPARAMS.values() if p.model]


def build_knobs() -> list[HyperParam]:
    """Hyperparameters that are arguments of ``build_model``."""
    return [p for p in HYPERPARAMS.values() if p.build]


def training_knobs(estimator: str) -> list[HyperParam]:
    """The ``regressor``'s or ``classifier``'s training arguments (not ``build_model``'s): the arguments a
    user's own model estimator always has, which no factory argument may be named."""
    return [p for p in for_estimator(estimator) if not p.build]


def compile_knobs() -> list[HyperParam]:
    """What compiles a user's model when its factory does not (optimizer, learning rate, ...)."""
    return [p for p in HYPERPARAMS.values() if p.compile]


def layer_widths(n_hidden: int, n_neurons: Any) -> list[int]:
    """The width of each hidden layer: ``n_neurons`` for every layer, or its list (one per layer; a list whose
    length is not ``n_hidden`` raises ``ValueError``)."""
    if not isinstance(n_neurons, list | tuple):
        return [int(n_neurons)] * int(n_hidden)
    if len(n_neurons) != n_hidden:
        raise ValueError(f"n_neurons has {len(n_neurons)} value{'s' if len(n_neurons) != 1 else ''} "
                         f"({list(n_neurons)}) but n_hidden is {n_hidden}: give one width per hidden layer, or "
                         "one int for all of them")
    return [int(n) for n in n_neurons]


def check_params(values: Mapping[str, Any], names: Iterable[str] | None = None) -> None:
    """Check ``values[name]`` for each name (default: every key) against the table; the first problem raises."""
    for name in values if names is None else names:
        HYPERPARAMS[name].check(values[name])


# ---- documentation -------------------------------------------------------------------------------------


def _where(p: HyperParam) -> str:
    keys = [key for key, on in (("space", p.tunable), ("model", p.model), (p.study, p.study)) if on]
    return ", ".join(f"`{key}`" for key in keys) or "-"


def _allowed(p: HyperParam) -> str:
    if p.choices:
        return " \\| ".join(p.choices)
    words = {"int": "int", "float": "float", "str": "str", "bool": "bool", "any": "-"}
    return " ".join(filter(None, [words[p.kind], p.bounds_text(), "or None" if p.nullable else "",
                                  "or a list of them" if p.per_layer else ""]))


def _show(value: Any) -> str:
    return str(value) if not isinstance(value, float) or value >= 0.01 or value == 0 else f"{value:g}"


def markdown_table() -> str:
    """The table of estimator arguments (docs/estimators.md)."""
    lines = ["| parameter | default | allowed | in a study file | meaning |", "|---|---|---|---|---|"]
    for p in HYPERPARAMS.values():
        doc = ("regressor only: " if p.estimators == "regressor" else "") + p.doc
        lines.append(f"| `{p.name}` | {_show(p.default)} | {_allowed(p)} | {_where(p)} | {doc} |")
    return "\n".join(lines)


def numpydoc(estimator: str) -> str:
    """The ``Parameters`` section of the ``regressor``'s or ``classifier``'s docstring."""
    lines = ["Parameters", "----------"]
    for p in for_estimator(estimator):
        kind = p.doc_type or ("{" + ", ".join(f'"{c}"' for c in p.choices) + "}" if p.choices else p.kind)
        kind += " or None" if p.nullable and not p.doc_type else ""
        doc = textwrap.fill(
            f"{p.doc[0].upper()}{p.doc[1:]}.", 100, initial_indent="    ", subsequent_indent="    "
        )
        lines += [f"{p.name} : {kind}, default={p.default!r}", doc]
    return "\n".join(lines)


def tunable_line() -> str:
    """The list of names a study may tune (docs/estimators.md)."""
    names = [p.name for p in HYPERPARAMS.values() if p.tunable]
    return "Tunable names: " + ", ".join(f"`{n}`" for n in names) + "."


def own_model_lines() -> str:
    """The lines on which arguments the user's-model estimators have (docs/estimators.md)."""
    training = [p.name for p in training_knobs("regressor")]
    compiling = [p.name for p in compile_knobs()]
    return (
        "- Training settings (every user's model): " + ", ".join(f"`{n}`" for n in training) + ".\n"
        "- Compile settings (a model the factory leaves uncompiled; a factory argument of the same name takes "
        "their place): " + ", ".join(f"`{n}`" for n in compiling) + "."
    )


_BLOCKS = {"hyperparameter table": markdown_table, "tunable names": tunable_line, "own model knobs": own_model_lines}


def render_readme(text: str) -> str:
    """``text`` with each generated block (between ``<!-- begin: X -->`` and ``<!-- end: X -->``) renewed."""
    for block, render in _BLOCKS.items():
        begin, end = f"<!-- begin: {block} -->", f"<!-- end: {block} -->"
        head, found, rest = text.partition(begin)
        if not found or end not in rest:
            raise ValueError(f"no '{begin}' ... '{end}' block in the page")
        text = f"{head}{begin}\n{render()}\n{end}{rest.partition(end)[2]}"
    return text


if __name__ == "__main__":  # python -m estimators.common.hyperparams [docs/estimators.md]: rewrite the generated blocks
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/estimators.md")
    readme.write_text(render_readme(readme.read_text(encoding="utf-8")), encoding="utf-8")
