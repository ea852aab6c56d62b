"""The command-line overrides of a study file, as one object: ``--n-trials``, ``--timeout``, ``--seed``,
``--tracking-uri``, ``--experiment``, ``--output-dir``.

``tuning.run`` and ``tuning.report`` declare their options with :func:`add_arguments` and read them back
with :meth:`Overrides.from_args`; :meth:`StudyConfig.with_overrides` applies them (a validated copy).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

#: override -> (study-file section, key, command-line help)
OPTIONS: dict[str, tuple[str, str, str]] = {
    "n_trials": ("search", "n_trials", "override search.n_trials"),
    "timeout": ("search", "timeout", "override search.timeout (seconds)"),
    "seed": ("search", "seed", "override search.seed"),
    "tracking_uri": ("mlflow", "tracking_uri", "MLflow tracking URI (default: the study's, else MLflow's default)"),
    "experiment": ("mlflow", "experiment", "MLflow experiment name (default: the study name)"),
    "output_dir": ("export", "dir", "where state, the exported model and the report go (default: exports/<name>)"),
}
_TYPES = {"n_trials": int, "timeout": float, "seed": int}
LOCATION = ("tracking_uri", "experiment", "output_dir")  # the ones that say where a study lives


@dataclass(frozen=True)
class Overrides:
    """Values that replace the study file's; None leaves the file's value."""

    n_trials: int | None = None
    timeout: float | None = None
    seed: int | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    output_dir: str | os.PathLike[str] | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Overrides:
        """The overrides among parsed command-line arguments (options not declared are None)."""
        return cls(**{f.name: getattr(args, f.name, None) for f in fields(cls)})

    def given(self) -> dict[str, Any]:
        """The overrides that are set, by name."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def changes(self) -> dict[tuple[str, str], Any]:
        """The set overrides as (section, key) of the study file -> value."""
        out = {}
        for name, value in self.given().items():
            section, key, _ = OPTIONS[name]
            out[(section, key)] = str(value) if name == "output_dir" else value
        return out

    def __bool__(self) -> bool:
        return bool(self.given())


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] = tuple(OPTIONS)) -> None:
    """Declare the ``--n-trials`` ... options (those in ``names``) on ``parser``."""
    for name in names:
        option = "--" + name.replace("_", "-")
        parser.add_argument(option, type=_TYPES.get(name, str), help=OPTIONS[name][2])
