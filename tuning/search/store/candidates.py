"""The random backend's candidates: candidate ``i`` is a function of the seed, the space and ``i`` alone.

So a longer study starts with the shorter one's candidates (``--n-trials`` 18 then 20 runs 20 different
ones), and every worker, resume and refill sees the same candidate ``i``:

* **A finite grid** (:func:`~tuning.config.paramspec.uniform_grid`: every entry categorical, an int range
  without ``log`` or a float range with ``step``, none conditional): the candidates are a seeded permutation
  of the grid, without replacement. scikit-learn's ``ParameterGrid`` numbers its points; a Fisher-Yates
  shuffle drawn lazily from the seed's ``numpy.random.Generator`` orders them (the first k positions need
  only the first k draws). More trials than the grid holds are refused when the study loads.
* **Any other space** (a continuous or log-scaled range, or ``per`` / ``when``): candidate ``i`` is drawn
  from its own generator, seeded by ``SeedSequence(seed, spawn_key=(i,))``, from the same scipy
  distributions as before (:func:`~tuning.search.space.to_distributions`) over every name a trial may hold
  (:func:`~tuning.search.space.flat_space`), keeping its active values. A draw equal to an earlier
  candidate (ints, choices, an inactive branch) is drawn again from that generator, up to
  ``REDRAWS`` times, so a small conditional space gives distinct candidates until it runs out; its size is
  not checked at load (the set of its combinations is no rectangle), and past that point candidates repeat.

This is not scikit-learn's ``ParameterSampler`` sequence for the same seed: that one depends on ``n_iter``
(a grid permutation of ``n_iter`` points, or draws with replacement once ``n_iter`` exceeds the grid), so a
longer study would not start with the shorter one's candidates.

A KerasTuner hypermodel has no declared space: its candidates are empty and its trials draw with
:class:`CandidateSampler`, keyed by (seed, candidate index, name).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import optuna
from sklearn.model_selection import ParameterGrid

from tuning.config.paramspec import uniform_grid
from tuning.search.space import active, flat_space, to_distributions, to_python
from tuning.search.store.budget import CANDIDATE

REDRAWS = 100  # draws of a candidate that keep repeating earlier candidates before a repeat is kept
MAX_PERMUTED = 2**63  # a larger grid (numpy draws int64 positions) is drawn like a continuous space


def candidates(config: Any, count: int) -> list[dict[str, Any]]:
    """The first ``count`` candidates of the study (fewer when its grid holds fewer); a longer list starts
    with a shorter one."""
    if is_hypermodel_study(config):
        return [{} for _ in range(count)]
    seed = config.search.seed
    grid = uniform_grid(config.space)
    points = ParameterGrid(grid) if grid is not None else None
    if points is not None and len(points) <= MAX_PERMUTED:
        return [to_python(points[index]) for index in permutation_prefix(len(points), count, seed)]
    return drawn_candidates(config.space, count, seed)


def permutation_prefix(size: int, count: int, seed: int) -> list[int]:
    """The first ``count`` (at most ``size``) entries of the seed's random permutation of ``range(size)``:
    a Fisher-Yates shuffle from the front, its swaps kept in a dict (memory grows with ``count``)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    moved: dict[int, int] = {}
    out = []
    for k in range(min(size, count)):
        j = int(rng.integers(k, size))
        out.append(moved.get(j, j))
        moved[j] = moved.get(k, k)
    return out


def drawn_candidates(space: Any, count: int, seed: int) -> list[dict[str, Any]]:
    """Candidates ``0 .. count - 1`` of a space that is no finite grid, each from its own generator (see the
    module docstring)."""
    distributions = to_distributions(flat_space(space))
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index in range(count):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        for _ in range(REDRAWS):
            params = to_python(active(space, draw_one(distributions, rng)))
            if _key(params) not in seen:
                break
        seen.add(_key(params))
        out.append(params)
    return out


def _key(params: dict[str, Any]) -> str:
    return repr(sorted(params.items()))


def draw_one(distributions: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One value per name, as ``ParameterSampler`` draws with replacement: a scipy distribution's ``rvs``, or a
    uniform pick from a list (names in sorted order)."""
    out = {}
    for name in sorted(distributions):
        values = distributions[name]
        out[name] = values.rvs(random_state=rng) if hasattr(values, "rvs") else values[rng.integers(len(values))]
    return out


def is_hypermodel_study(config: Any) -> bool:
    factory = config.model.factory
    return factory is not None and factory.takes_hp


class CandidateSampler(optuna.samplers.BaseSampler):
    """Random values that depend only on the seed, the trial's candidate index and the parameter's name, so
    a define-by-run space (a KerasTuner hypermodel's) draws candidate i the same whichever worker runs it, in
    any order, on resume and on retry."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        index = trial.user_attrs.get(CANDIDATE, trial.number)
        key = zlib.crc32(f"{self.seed}:{index}:{param_name}".encode())
        return optuna.samplers.RandomSampler(seed=key).sample_independent(study, trial, param_name,
                                                                           param_distribution)
