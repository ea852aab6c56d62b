"""KerasTuner's ``HyperModel`` of its "Getting started" guide, section "Tune model training" (Apache 2.0,
the Keras team), as the guide writes it; its ``fit`` also tunes the batch size, as KerasTuner's
``HyperModel`` documentation shows. Ten classes: scikit-learn's 8x8 digits fit it as they are.

The study makes ``MyHyperModel()`` and builds with its ``build(hp)``; its ``fit`` wraps the study's training:
the rows come as ``*args`` and the study's settings (epochs, early stopping and pruning callbacks) as
``**kwargs``, and the batch size and shuffling it draws are trial parameters like ``units``. With
``keras_tuner`` installed the class is its subclass; without it, a plain class does the same.
"""

import keras
from keras import layers

try:
    import keras_tuner
    HyperModel = keras_tuner.HyperModel
except ImportError:  # the study needs no KerasTuner: any class with build(hp) and fit(hp, model, ...) works
    HyperModel = object


class MyHyperModel(HyperModel):
    def build(self, hp):
        model = keras.Sequential()
        model.add(layers.Flatten())
        model.add(
            layers.Dense(
                units=hp.Int("units", min_value=32, max_value=512, step=32),
                activation="relu",
            )
        )
        model.add(layers.Dense(10, activation="softmax"))
        model.compile(
            optimizer="adam",
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(
            *args,
            batch_size=hp.Choice("batch_size", [16, 32]),
            # Tune whether to shuffle the data in each epoch.
            shuffle=hp.Boolean("shuffle"),
            **kwargs,
        )
