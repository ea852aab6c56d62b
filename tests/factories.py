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


def token_functional(n_neurons=4, vocab_size=None, sequence_length=None):
    """Token ids into an Embedding, through an integer ``keras.Input`` (functional)."""
    ids = keras.Input(shape=(sequence_length,), dtype="int32", name="ids")
    vectors = keras.layers.Embedding(vocab_size, 3)(ids)
    hidden = keras.layers.Dense(n_neurons, activation="relu")(keras.layers.GlobalAveragePooling1D()(vectors))
    return keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(hidden))
