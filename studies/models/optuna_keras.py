# ruff: noqa: I001, UP032  (the example as optuna-examples writes it)
"""Optuna's Keras example model function, as optuna-examples writes it (keras/keras_integration.py,
``create_model``; MIT license, (c) Preferred Networks, Inc.), with the imports and ``CLASSES`` it uses.

A function of one argument named ``trial`` is an Optuna model function: the study gives it the trial, whose
``suggest_*`` calls are the study's parameters (``n_layers``, ``n_units_l0`` ..., ``dropout_l0`` ...,
``learning_rate``), drawn by the sampler as the model builds; a refit or an export replays the values drawn.
The example has no input layer (the model takes its input shape on its first call) and ten classes, as
scikit-learn's digits. Nothing here imports Optuna.
"""

from keras.layers import Dense
from keras.layers import Dropout
from keras.models import Sequential
from keras.optimizers import RMSprop

CLASSES = 10


def create_model(trial):
    # We optimize the number of layers, hidden units and dropout in each layer and
    # the learning rate of RMSProp optimizer.

    # We define our MLP.
    n_layers = trial.suggest_int("n_layers", 1, 3)
    model = Sequential()
    for i in range(n_layers):
        num_hidden = trial.suggest_int("n_units_l{}".format(i), 4, 128, log=True)
        model.add(Dense(num_hidden, activation="relu"))
        dropout = trial.suggest_float("dropout_l{}".format(i), 0.2, 0.5)
        model.add(Dropout(rate=dropout))
    model.add(Dense(CLASSES, activation="softmax"))

    # We compile our model with a sampled learning rate.
    learning_rate = trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True)
    model.compile(
        loss="categorical_crossentropy",
        optimizer=RMSprop(learning_rate=learning_rate),
        metrics=["accuracy"],
    )

    return model
