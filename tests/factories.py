"""Small model factories of a user's kind, in a module (as a factory must be) for the estimator tests."""

import keras


def small_network(n_neurons=8, activation="relu", input_shape=None, n_classes=None, task="regression"):
    """One hidden layer; the output follows the task. Left uncompiled: the estimator compiles it."""
    inputs = keras.Input(shape=input_shape)
    hidden = keras.layers.Dense(n_neurons, activation=activation)(inputs)
    if task == "regression":
        outputs = keras.layers.Dense(1)(hidden)
    elif task == "binary":
        outputs = keras.layers.Dense(1, activation="sigmoid")(hidden)
    else:
        outputs = keras.layers.Dense(n_classes, activation="softmax")(hidden)
    return keras.Model(inputs, outputs)


def handson_flatten(n_classes=10):
    """Hands-On ML's Fashion-MNIST classifier (chapter 10): Flatten(input_shape=[28, 28]) then Dense layers."""
    model = keras.models.Sequential([
        keras.layers.Flatten(input_shape=[28, 28]),
        keras.layers.Dense(30, activation="relu"),
        keras.layers.Dense(n_classes, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    return model
