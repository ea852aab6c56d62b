"""The user's own Keras model as a scikit-learn estimator: KerasModelRegressor / KerasModelClassifier.

Factories live in modules (the ones shipped in studies/models, or files written to a temporary folder and
named as ``file.py:function``), as a user's would.
"""

import pickle
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import loguniform, randint
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.model_selection import RandomizedSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from estimators import KerasModelClassifier, KerasModelRegressor
from estimators.own_model.factory import FactoryError, resolve

MODELS = Path(__file__).resolve().parents[1] / "studies" / "models"
HANDSON = f"{MODELS / 'handson.py'}:build_model"
WIDE_DEEP = f"{MODELS / 'wide_deep.py'}:build_model"


@pytest.fixture(scope="module")
def regression():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X[:240]), (y[:240] - y.mean()) / y.std()


def factory_file(tmp_path: Path, name: str, source: str) -> str:
    """Write a factory module ``name``.py and return its ``file.py:function`` prefix."""
    path = tmp_path / f"{name}.py"
    path.write_text("import keras\n\n" + textwrap.dedent(source))
    return str(path)


def handson():
    """The Hands-On factory, imported as its module (as a user's script would)."""
    return resolve(HANDSON).function


# ---- parameters: the factory's arguments by their own names ---------------------------------------------


def test_the_factorys_arguments_are_parameters_with_its_defaults():
    est = KerasModelRegressor(build=handson(), epochs=7)
    params = est.get_params()
    assert {k: params[k] for k in ("n_hidden", "n_neurons", "learning_rate")} == {
        "n_hidden": 1, "n_neurons": 30, "learning_rate": 3e-3}
    assert "input_shape" not in params  # a fact: given from the data
    assert params["epochs"] == 7 and params["build"] is handson()
    assert est.n_neurons == 30
    est.set_params(n_neurons=64)
    assert est.get_params()["n_neurons"] == 64 and est.n_neurons == 64
    with pytest.raises(ValueError, match="Invalid parameter 'n_neurns'.*build_model"):
        est.set_params(n_neurns=3)
    assert "n_neurons=64" in repr(est) and "handson.build_model" in repr(est)


def test_clone_and_pickle_keep_every_parameter(regression):
    X, y = regression
    est = KerasModelRegressor(build=handson(), n_neurons=8, epochs=2, random_state=0)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    est.fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(X[:20]), est.predict(X[:20]))
    assert back.get_params() == est.get_params()


def test_the_hands_on_factory_verbatim_in_randomized_search(regression):
    X, y = regression
    search = RandomizedSearchCV(
        KerasModelRegressor(build=handson(), epochs=2, patience=1, random_state=0),
        {"n_hidden": randint(0, 4), "n_neurons": randint(1, 100), "learning_rate": loguniform(3e-4, 3e-2)},
        n_iter=2, cv=2, random_state=0,
    )
    search.fit(X, y)
    best = search.best_estimator_
    assert set(search.best_params_) == {"n_hidden", "n_neurons", "learning_rate"}
    assert best.n_neurons == search.best_params_["n_neurons"]
    assert len(best.model_.layers) == best.n_hidden + 1  # the factory built it with the searched values
    assert np.isfinite(best.predict(X[:5])).all()


def test_an_import_string_works_in_a_pipeline_with_parallel_jobs(regression):
    X, y = regression
    pipe = make_pipeline(StandardScaler(), KerasModelRegressor(build=HANDSON, epochs=2, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=2, n_jobs=2)
    assert np.isfinite(scores).all()


# ---- facts ---------------------------------------------------------------------------------------------


def test_facts_come_from_the_data(tmp_path):
    file = factory_file(tmp_path, "facts_factory", """
        SEEN = []

        def build(units=4, input_shape=(99,), n_features=None, n_classes=None, task=None, seed=None):
            SEEN.append(dict(input_shape=input_shape, n_features=n_features, n_classes=n_classes, task=task,
                             seed=seed))
            return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Dense(units),
                                     keras.layers.Dense(n_classes or 1, activation="softmax" if n_classes else None)])
    """)
    X, y = load_iris(return_X_y=True)
    clf = KerasModelClassifier(build=f"{file}:build", epochs=1, random_state=3).fit(X, y)
    reg = KerasModelRegressor(build=f"{file}:build", epochs=1).fit(X, y.astype(float))
    seen = resolve(f"{file}:build").function.__globals__["SEEN"]
    assert seen == [dict(input_shape=(4,), n_features=4, n_classes=3, task="multiclass", seed=3),
                    dict(input_shape=(4,), n_features=4, n_classes=None, task="regression", seed=None)]
    assert "input_shape" not in clf.get_params() and reg.n_features_in_ == 4
    with pytest.raises(ValueError, match="input_shape is given to .* from the data"):
        KerasModelRegressor(build=f"{file}:build", input_shape=(4,)).fit(X, y.astype(float))


# ---- compiling -------------------------------------------------------------------------------------------


def test_a_compiled_model_keeps_its_optimizer_with_the_memory_fix(regression):
    X, y = regression
    est = KerasModelRegressor(build=handson(), learning_rate=0.01, epochs=1).fit(X, y)
    optimizer = est.model_.optimizer
    assert type(optimizer).__name__ == "SGD"
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(0.01)
    assert optimizer._all_reduce_sum_gradients.__name__ == "sum_over_replicas"


def test_an_uncompiled_model_is_compiled_with_the_tables_knobs(regression):
    X, y = regression
    est = KerasModelRegressor(build=WIDE_DEEP, optimizer="adam", learning_rate=0.002, epochs=1).fit(X, y)
    optimizer = est.model_.optimizer
    assert type(optimizer).__name__ == "Adam"
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(0.002)
    assert optimizer._all_reduce_sum_gradients.__name__ == "sum_over_replicas"
    assert est.model_.loss == "mse"
    with pytest.raises(ValueError, match="optimizer must be one of"):
        KerasModelRegressor(build=WIDE_DEEP, optimizer="adamm", epochs=1).fit(X, y)


CLASSIFIERS = """
    def softmax(n_neurons=16, n_classes=None, input_shape=None):
        return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Dense(n_neurons, activation="relu"),
                                 keras.layers.Dense(n_classes, activation="softmax")])

    def one_hot(n_neurons=16, n_classes=None, input_shape=None):
        model = softmax(n_neurons, n_classes, input_shape)
        model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(0.02))
        return model

    def sigmoid(n_neurons=16, input_shape=None):
        model = keras.Sequential([keras.Input(shape=input_shape), keras.layers.Dense(n_neurons, activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(0.02))
        return model
"""


@pytest.fixture(scope="module")
def classifier_factories(tmp_path_factory):
    return factory_file(tmp_path_factory.mktemp("classifiers"), "classifier_factories", CLASSIFIERS)


@pytest.mark.parametrize("function, data", [("softmax", "iris"), ("one_hot", "iris"), ("sigmoid", "cancer"),
                                            ("softmax", "cancer")])
def test_the_target_encoding_follows_the_models_output(classifier_factories, function, data):
    file = classifier_factories
    X, y = load_iris(return_X_y=True) if data == "iris" else load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    labels = np.array(["setosa", "versicolor", "virginica", "?"])[y]  # string labels come back as given
    clf = KerasModelClassifier(build=f"{file}:{function}", optimizer="adam", learning_rate=0.02, epochs=30,
                               random_state=0, validation_fraction=None).fit(X, labels)
    assert clf.score(X, labels) > 0.85
    proba = clf.predict_proba(X[:10])
    assert proba.shape == (10, len(np.unique(y))) and np.allclose(proba.sum(axis=1), 1)
    assert set(clf.predict(X)) <= set(labels)


# ---- prediction: a row scores the same alone and in any batch ------------------------------------------


def test_a_functional_model_with_a_custom_layer_scores_a_row_the_same_alone(regression):
    X, y = regression
    est = KerasModelRegressor(build=WIDE_DEEP, epochs=2, random_state=0).fit(X, y)
    batch = est.predict(X[:40])
    alone = np.array([est.predict(X[i : i + 1])[0] for i in (0, 17, 39)])
    np.testing.assert_allclose(alone, batch[[0, 17, 39]], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(batch, np.asarray(est.model_(X[:40].astype("float32"))).ravel(), rtol=1e-4,
                               atol=1e-5)  # the float64 copy computes what the float32 model does


def test_a_subclassed_model_trains_and_predicts(tmp_path, regression):
    file = factory_file(tmp_path, "subclassed_factory", """
        class TwoLayers(keras.Model):
            def __init__(self, units=8, **kwargs):
                super().__init__(**kwargs)
                self.hidden = keras.layers.Dense(units, activation="relu")
                self.out = keras.layers.Dense(1)

            def call(self, inputs):
                return self.out(self.hidden(inputs))

        def build(units=8):
            return TwoLayers(units)
    """)
    X, y = regression
    est = KerasModelRegressor(build=f"{file}:build", units=4, epochs=2, random_state=0).fit(X, y)
    assert est.predict(X[:7]).shape == (7,) and np.isfinite(est.predict(X[:7])).all()


# ---- factories refused, with what to do -----------------------------------------------------------------


def test_factories_that_cannot_travel_are_refused():
    def nested(n=1):
        return None

    with pytest.raises(FactoryError, match="lambda.*put the factory in a module"):
        resolve(lambda n=1: None)
    with pytest.raises(FactoryError, match="inside another function.*put the factory in a module"):
        resolve(nested)
    nested.__module__, nested.__qualname__ = "__main__", "nested"
    with pytest.raises(FactoryError, match="defined in __main__"):
        resolve(nested)


def test_bad_import_strings_say_what_is_wrong(tmp_path):
    with pytest.raises(FactoryError, match="no file"):
        resolve("nowhere/models.py:build_model")
    with pytest.raises(FactoryError, match="did you mean 'build_model'"):
        resolve(f"{MODELS / 'handson.py'}:build_modle")
    with pytest.raises(FactoryError, match="cannot import no_such_package.models: ModuleNotFoundError"):
        resolve("no_such_package.models:build")
    broken = factory_file(tmp_path, "broken_factory", "import not_a_module_anywhere\n")
    with pytest.raises(FactoryError, match="cannot import broken_factory.py: ModuleNotFoundError: .*not_a_module"):
        resolve(f"{broken}:build")
    with pytest.raises(FactoryError, match="write 'path/to/file.py:function'"):
        resolve("handson.py")


def test_a_factory_argument_named_like_a_training_setting_is_refused(tmp_path):
    file = factory_file(tmp_path, "colliding_factory", """
        def build(n_neurons=3, epochs=10):
            return keras.Sequential([keras.layers.Dense(1)])
    """)
    with pytest.raises(FactoryError, match="argument 'epochs' has the name of a training setting.*'model_epochs'"):
        resolve(f"{file}:build")


def test_a_factory_that_returns_no_model_fails_the_fit(tmp_path, regression):
    file = factory_file(tmp_path, "not_a_model_factory", """
        def build(units=3):
            return "a model"
    """)
    X, y = regression
    with pytest.raises(TypeError, match="returned str, not a Keras model"):
        KerasModelRegressor(build=f"{file}:build", epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="needs build"):
        KerasModelRegressor(epochs=1).fit(X, y)
