"""A functional Wide & Deep network (Hands-On ML, chapter 10) with a custom layer, left uncompiled.

The raw features go straight to the output (the wide path) and through ``n_hidden`` Dense layers (the deep
path) after ``FeatureScale``, a custom layer registered with Keras, so that a saved model loads in another
process. The factory does not compile the model: the study compiles it with the task's loss and the
``optimizer`` / ``learning_rate`` of its ``model:`` or ``space:`` sections.
"""

import keras


@keras.saving.register_keras_serializable(package="wide_deep")
class FeatureScale(keras.layers.Layer):
    """Multiplies each feature by a trainable scale (starting at 1)."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, inputs):
        return inputs * self.scale


def build_model(n_hidden=2, n_neurons=30, activation="relu", input_shape=(8,)):
    inputs = keras.Input(shape=input_shape)
    deep = FeatureScale()(inputs)
    for _ in range(n_hidden):
        deep = keras.layers.Dense(n_neurons, activation=activation)(deep)
    wide_and_deep = keras.layers.Concatenate()([inputs, deep])
    output = keras.layers.Dense(1)(wide_and_deep)
    return keras.Model(inputs=inputs, outputs=output)
