"""Shared test set-up: quiet TensorFlow, and one migrated MLflow database to copy per test."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The settings of a study process (oneDNN off before TensorFlow loads, quiet libraries, heap freezing),
# whichever test module imports TensorFlow first; subprocesses of the tests inherit the environment, so a
# seeded fit is the same in both.
from tuning.parallel.process import configure_study_process  # noqa: E402

configure_study_process()


@pytest.fixture(autouse=True)
def warm_study_workers(request, monkeypatch):
    """The worker processes a study run in a test starts (``search.workers``) start warm, as the tests' own
    commands do (tests/warm_python.py): forked from a process that has the libraries imported, a TensorFlow
    start-up saved per worker. A test marked ``cold_workers`` gets them as the study starts them."""
    if request.node.get_closest_marker("cold_workers"):
        return
    import subprocess
    import types

    from tests import warm_python
    from tuning.parallel import workers

    def popen(cmd, *args, env=None, **kwargs):
        if args or kwargs:  # not the way spawn_workers starts a worker
            return subprocess.Popen(cmd, *args, env=env, **kwargs)
        streams = [f"/proc/{os.getpid()}/fd/{fd}" for fd in (1, 2)]  # inherited, as Popen's child would
        streams = [path if os.path.exists(path) else os.devnull for path in streams]
        return warm_python.popen(cmd, env=env, stdout=streams[0], stderr=streams[1])

    monkeypatch.setattr(workers, "subprocess", types.SimpleNamespace(**{**vars(subprocess), "Popen": popen}))


@pytest.fixture(scope="session", autouse=True)
def mlflow_template_db(tmp_path_factory):
    """Create (and migrate) an empty MLflow SQLite store once; tests copy it instead of migrating anew.

    Creating a fresh store runs MLflow's schema migrations, which costs seconds per test.
    """
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    os.environ["TUNING_TEST_MLFLOW_TEMPLATE"] = str(path)
    return path


# The test files, slowest first (their wall time with two workers, measured). ``--dist loadfile`` hands each
# worker whole files from a queue; xdist orders that queue by the number of tests in a file, which leaves the
# long files of few tests (a benchmark smoke run, a parallel study) to the end, one worker running them while
# the other has nothing left. Started first instead, the long files overlap and the many short ones fill
# both workers to the end. Files not named here follow, in the order collected.
SLOWEST_FIRST = [
    "test_true_values.py",
    "test_benchmarks.py",
    "test_trial_resume.py",
    "test_own_model_export.py",
    "test_train_on.py",
    "test_distributed.py",
    "test_estimator_checks.py",
    "test_resume.py",
    "test_trial_resume.py",
    "test_own_model_inputs.py",
    "test_quality_knobs.py",
    "test_study.py",
    "test_stacked.py",
    "test_estimators.py",
    "test_benchmarks_stacked.py",
    "test_cli.py",
    "test_stacked_study.py",
    "test_objectives.py",
    "test_members.py",
    "test_conditional_space.py",
    "test_tables.py",
    "test_benchmarks_gbdt.py",
    "test_clean_run.py",
    "test_parallel_smoke.py",
    "test_recipe.py",
    "test_random_candidates.py",
    "test_divergence.py",
    "test_trial_outcomes.py",
    "test_browser.py",
    "test_own_model_study.py",
    "test_performance_defaults.py",
    "test_report.py",
    "test_lr_range.py",
    "test_own_model.py",
]


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the files in the order below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order
