"""KerasTuner's "Getting started" hypermodel, adapted to scikit-learn's 8x8 digits (64 pixels, 10 classes).

A function of one argument ``hp`` is a KerasTuner hypermodel: the study draws its space from the
``hp.Int`` / ``hp.Float`` / ``hp.Choice`` / ``hp.Boolean`` calls as the function runs (``units_1`` only
when ``num_layers`` reaches 2, ``dropout_rate`` only when ``dropout`` is true). Nothing here imports
KerasTuner: the study gives the function its own ``hp``.
"""

import keras


def build_model(hp):
    model = keras.Sequential()
    model.add(keras.layers.Flatten())
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(keras.layers.Dense(units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                                     activation=hp.Choice("activation", ["relu", "tanh"])))
    if hp.Boolean("dropout"):
        with hp.conditional_scope("dropout", [True]):
            model.add(keras.layers.Dropout(rate=hp.Float("dropout_rate", min_value=0.1, max_value=0.5)))
    model.add(keras.layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model
