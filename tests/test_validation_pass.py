"""The validation pass of every epoch (estimators/common/validation.py) logs what Keras' own validation logged:
``val_loss`` (the compiled loss with the model's regularisation losses) and ``val_<metric>`` of the compiled
metrics equal ``model.evaluate`` on the same rows, for our MLPs and for a user's model compiled with its own
loss, metrics and a regulariser; its outputs are the network's on those rows."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from estimators import KerasMLPClassifier, KerasMLPRegressor, KerasModelClassifier
from estimators.common.validation import ValidationListener

N_VALID = 9000  # more than one chunk of 8,192 rows: the loss is the mean over all rows, not the last chunk's


class Evaluate(ValidationListener):
    """After each epoch: the pass's logs and outputs beside what ``model.evaluate`` says of the same rows."""

    def __init__(self, estimator, x, y):
        super().__init__()
        self.estimator, self.x, self.y, self.seen = estimator, x, y, []

    def on_epoch_end(self, epoch, logs=None):
        y = self.estimator.target_encoder_.transform(self.y)  # the targets as the network trains on them
        evaluated = self.model.evaluate(self.x, y, batch_size=8192, verbose=0, return_dict=True)
        outputs = np.asarray(self.model.predict(self.x, batch_size=8192, verbose=0))
        self.seen.append((dict(logs), evaluated, self.validation.outputs, outputs))


def regularised(n_classes=None, input_shape=None):
    """A user's model: an L2 penalty, its own loss (one-hot targets) and metrics."""
    inputs = keras.Input(shape=input_shape)
    hidden = keras.layers.Dense(6, activation="relu", kernel_regularizer=keras.regularizers.L2(0.05))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(hidden))
    model.compile(loss="categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy", keras.metrics.AUC(name="auc")])
    return model


@pytest.mark.parametrize("kind", ["regressor", "classifier", "user"])
def test_the_pass_logs_what_keras_evaluate_says_and_keeps_the_outputs(kind):
    if kind == "regressor":
        X, y = make_regression(n_samples=9200, n_features=5, noise=5.0, random_state=0)
        y = y * 10 + 300  # trained standardised: the pass sees the encoded targets, as Keras did
        est = KerasMLPRegressor(n_neurons=8, epochs=2, batch_size=256, standardize_target=True, random_state=0)
    else:
        X, y = make_classification(n_samples=9200, n_features=5, n_informative=4, n_redundant=0, n_classes=3,
                                   random_state=0)
        est = (KerasMLPClassifier(n_neurons=8, epochs=2, batch_size=256, random_state=0) if kind == "classifier"
               else KerasModelClassifier(build=regularised, epochs=2, batch_size=256, random_state=0))
    X = X.astype("float32")
    X_train, y_train, X_valid, y_valid = X[:200], y[:200], X[200:], y[200:]
    watch = Evaluate(est, X_valid, y_valid)
    est.fit(X_train, y_train, validation_data=(X_valid, y_valid), callbacks=[watch])
    assert len(watch.seen) == 2 and len(X_valid) == N_VALID
    for logs, evaluated, outputs, predicted in watch.seen:
        names = {f"val_{k}" for k in evaluated if k != "compile_metrics"}
        assert {k for k in logs if k.startswith("val_")} == names
        for name, value in evaluated.items():
            assert logs[f"val_{name}"] == pytest.approx(value, rel=1e-5), name
        np.testing.assert_allclose(outputs, predicted, rtol=1e-5, atol=1e-6)
    assert est.history_["val_loss"] == [logs["val_loss"] for logs, *_ in watch.seen]
