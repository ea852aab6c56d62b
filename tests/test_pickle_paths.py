"""Exports name the public ``estimators.<Name>`` of a pickled class, not the module that defines it; an export
written before the estimators moved into folders (``estimators.wrappers.KerasMLPRegressor`` ...) still loads
through ``load_model``, which leaves no alias behind."""

import pickle
import pickletools
import sys

import pytest
from sklearn.base import clone

import estimators
from tuning.export.files import PIPELINE_FILE, load_model
from tuning.export.old_paths import OLD_MODULES

CLASSES = [name for name in estimators.__all__ if name != "build_model"]


def globals_of(data: bytes) -> set[str]:
    """The ``module name`` pairs a pickle refers to."""
    found, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            found.add(" ".join(strings[-2:]))
        elif op.name == "GLOBAL":
            found.add(arg)
    return found


@pytest.mark.parametrize("name", CLASSES)
def test_a_public_class_is_pickled_by_its_public_name(name):
    klass = getattr(estimators, name)
    assert klass.__module__ == "estimators" and getattr(sys.modules["estimators"], name) is klass
    assert pickle.loads(pickle.dumps(klass)) is klass


def test_an_estimator_pickles_and_clones():
    model = estimators.KerasMLPRegressor(epochs=3)
    assert f"estimators {type(model).__name__}" in globals_of(pickle.dumps(model, protocol=4))
    assert pickle.loads(pickle.dumps(model)).get_params() == model.get_params()
    assert clone(model).get_params() == model.get_params()
    own = estimators.KerasModelClassifier(build="some.module:build", epochs=2)
    assert clone(pickle.loads(pickle.dumps(own))).get_params()["build"] == "some.module:build"


def old_pickle(obj, old_modules: dict[type, str]) -> bytes:
    """``obj`` pickled as the earlier layout pickled it: each class in ``old_modules`` under its old module."""
    saved = {klass: klass.__module__ for klass in old_modules}
    try:
        for klass, old in old_modules.items():
            klass.__module__ = old
            sys.modules[old] = sys.modules[OLD_MODULES[old]]
        return pickle.dumps(obj, protocol=4)
    finally:
        for klass, module in saved.items():
            klass.__module__ = module
            sys.modules.pop(old_modules[klass], None)


def test_an_export_of_the_earlier_layout_loads(tmp_path, monkeypatch):
    from estimators.common import ensemble, targets  # noqa: F401  (imported: the modules the old names alias)
    from estimators.mlp import estimators as mlp  # noqa: F401
    from estimators.own_model import estimators as own  # noqa: F401

    mlp_model = estimators.KerasMLPRegressor(epochs=3)
    pipeline = {"mlp": mlp_model, "own": estimators.KerasModelRegressor(build="some.module:build"),
                "encoder": estimators.StandardizedTargetEncoder(),
                "ensemble": estimators.AveragingRegressor([("a", mlp_model)])}
    data = old_pickle(pipeline, {estimators.KerasMLPRegressor: "estimators.wrappers",
                                 estimators.KerasModelRegressor: "estimators.user_model",
                                 estimators.StandardizedTargetEncoder: "estimators.targets",
                                 estimators.AveragingRegressor: "estimators.ensemble"})
    assert {"estimators.wrappers KerasMLPRegressor", "estimators.user_model KerasModelRegressor",
            "estimators.targets StandardizedTargetEncoder", "estimators.ensemble AveragingRegressor"} <= globals_of(data)
    (tmp_path / PIPELINE_FILE).write_bytes(data)  # joblib loads a plain pickle too
    for old in OLD_MODULES:  # none imported (an installed copy of the earlier layout would be found otherwise)
        monkeypatch.delitem(sys.modules, old, raising=False)
    loaded = load_model(tmp_path)
    assert {name: type(obj) for name, obj in loaded.items()} == {
        "mlp": estimators.KerasMLPRegressor, "own": estimators.KerasModelRegressor,
        "encoder": estimators.StandardizedTargetEncoder, "ensemble": estimators.AveragingRegressor}
    assert loaded["mlp"].get_params() == mlp_model.get_params()
    assert not set(OLD_MODULES) & set(sys.modules)  # no alias left behind

