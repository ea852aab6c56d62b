"""One space, two readings: scipy distributions for scikit-learn and Optuna suggestions."""

import numpy as np
import optuna
import pytest
from sklearn.model_selection import ParameterSampler

from tuning.config.schema import CategoricalParam, FloatParam, IntParam, load_study_dict
from tuning.search.schedulers import make_store
from tuning.search.space import IntLogUniform, grid, suggest, to_distributions, to_python
from tuning.search.store.candidates import candidates, draw_one

SPACE = {
    "n_hidden": IntParam(type="int", low=0, high=3),
    "n_neurons": IntParam(type="int", low=1, high=99),
    "learning_rate": FloatParam(type="float", low=3e-4, high=3e-2, log=True),
    "optimizer": CategoricalParam(type="categorical", choices=["sgd", "adam"]),
}


def test_distributions_sample_inside_the_ranges():
    samples = list(ParameterSampler(to_distributions(SPACE), n_iter=300, random_state=0))
    hidden = [s["n_hidden"] for s in samples]
    lrs = np.array([s["learning_rate"] for s in samples])
    assert set(hidden) == {0, 1, 2, 3}
    assert all(1 <= s["n_neurons"] <= 99 for s in samples)
    assert lrs.min() >= 3e-4 and lrs.max() <= 3e-2
    # log-uniform: about half the draws fall below the geometric midpoint 3e-3
    assert 0.4 < np.mean(lrs < 3e-3) < 0.6
    assert {s["optimizer"] for s in samples} == {"sgd", "adam"}


def test_int_log_uniform_is_bounded_and_skewed_low():
    dist = IntLogUniform(1, 100)
    rng = np.random.RandomState(0)
    values = [dist.rvs(random_state=rng) for _ in range(2000)]
    assert min(values) >= 1 and max(values) <= 100
    assert np.median(values) < 20  # uniform would give ~50


def test_stepped_ranges_become_lists():
    dists = to_distributions({"n_neurons": IntParam(type="int", low=8, high=32, step=8),
                              "dropout": FloatParam(type="float", low=0.0, high=0.5, step=0.25)})
    assert dists["n_neurons"] == [8, 16, 24, 32]
    assert dists["dropout"] == [0.0, 0.25, 0.5]


def test_suggest_reads_the_same_space_for_optuna():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(30):
        trial = study.ask()
        params = suggest(trial, SPACE)
        seen.append(params)
        study.tell(trial, 0.0)
    dist = study.trials[0].distributions
    assert dist["learning_rate"].log and dist["learning_rate"].low == 3e-4
    assert isinstance(dist["optimizer"], optuna.distributions.CategoricalDistribution)
    assert all(0 <= p["n_hidden"] <= 3 and 3e-4 <= p["learning_rate"] <= 3e-2 for p in seen)


def test_grid_lists_every_value():
    g = grid({"n_hidden": IntParam(type="int", low=0, high=2), "optimizer": SPACE["optimizer"]})
    assert g == {"n_hidden": [0, 1, 2], "optimizer": ["sgd", "adam"]}


def test_random_backend_candidate_i_is_drawn_from_its_own_seeded_generator():
    """Candidate i of a space that is no finite grid: the scipy distributions RandomizedSearchCV would take,
    drawn with the generator of ``SeedSequence(seed, spawn_key=(i,))``; so the first ones do not depend on
    how many are asked for (ParameterSampler's do: its draws depend on ``n_iter``)."""
    cfg = load_study_dict({
        "name": "t", "dataset": {"source": "diabetes"},
        "space": {"n_hidden": {"type": "int", "low": 0, "high": 3},
                  "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-2, "log": True}},
        "search": {"backend": "random", "n_trials": 10, "seed": 7},
    })
    ours = candidates(cfg, 10)
    dists = to_distributions(cfg.space)
    each = [to_python(draw_one(dists, np.random.default_rng(np.random.SeedSequence(7, spawn_key=(i,)))))
            for i in range(10)]
    assert ours == each and ours[:4] == candidates(cfg, 4)
    assert all(type(p["n_hidden"]) is int and 3e-4 <= p["learning_rate"] <= 3e-2 for p in ours)
    assert ours != candidates(cfg.with_overrides(seed=8), 10)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")  # ask/tell here
def test_the_random_store_runs_its_candidates_in_order(tmp_path):
    """The trials of a random study (queued in its Optuna store) are its candidates, trial i candidate i."""
    cfg = load_study_dict({
        "name": "t", "dataset": {"source": "diabetes"}, "export": {"dir": str(tmp_path)},
        "space": {"n_hidden": {"type": "int", "low": 0, "high": 3},
                  "n_neurons": {"type": "int", "low": 8, "high": 64, "step": 8},
                  "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-2, "log": True},
                  "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]}},
        "search": {"backend": "random", "n_trials": 6, "seed": 3},
    })
    store = make_store(cfg, tmp_path)
    store.open("minimize", "mse")
    trials = [store.study.ask() for _ in range(6)]
    assert [suggest(t, cfg.space) for t in trials] == candidates(cfg, 6)
    assert [t.number for t in trials] == list(range(6))
