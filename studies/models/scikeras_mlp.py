"""Model functions written for scikeras, copied as scikeras' documentation writes them.

- ``get_clf``: scikeras' "Basic usage" notebook (docs/source/notebooks/Basic_Usage.md, section 2.2,
  https://github.com/adriangb/scikeras), used there as
  ``KerasClassifier(model=get_clf, loss="binary_crossentropy", hidden_layer_sizes=(100,), dropout=0.5)``:
  it reads ``meta`` and returns the network uncompiled (one sigmoid unit: a binary classifier).
- ``get_model``: scikeras' README / quickstart model (``get_model(hidden_layer_dim, meta)``, one softmax unit
  per class), with the compile step scikeras' "Advanced usage" page shows for a function that takes
  ``compile_kwargs`` (the optimizer, loss and metrics scikeras would compile with).

``KerasModelClassifier(build=get_clf, hidden_layer_sizes=(100,), dropout=0.5)`` gives ``meta`` and
``compile_kwargs`` as scikeras does (:mod:`estimators.own_model.scikeras_args`).
"""

from tensorflow import keras


def get_clf(meta, hidden_layer_sizes, dropout):
    n_features_in_ = meta["n_features_in_"]
    n_classes_ = meta["n_classes_"]  # noqa: F841 (as scikeras writes it: read, unused for one sigmoid unit)
    model = keras.models.Sequential()
    model.add(keras.layers.Input(shape=(n_features_in_,)))
    for hidden_layer_size in hidden_layer_sizes:
        model.add(keras.layers.Dense(hidden_layer_size, activation="relu"))
        model.add(keras.layers.Dropout(dropout))
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    return model


def get_model(hidden_layer_dim, meta, compile_kwargs):
    # note that meta is a special argument that will be
    # handed a dict containing input metadata
    n_features_in_ = meta["n_features_in_"]
    X_shape_ = meta["X_shape_"]
    n_classes_ = meta["n_classes_"]  # noqa: F841 (as scikeras writes it: read, unused for one sigmoid unit)

    model = keras.models.Sequential()
    model.add(keras.layers.Dense(n_features_in_, input_shape=X_shape_[1:]))
    model.add(keras.layers.Activation("relu"))
    model.add(keras.layers.Dense(hidden_layer_dim))
    model.add(keras.layers.Activation("relu"))
    model.add(keras.layers.Dense(n_classes_))
    model.add(keras.layers.Activation("softmax"))
    model.compile(optimizer=compile_kwargs["optimizer"], loss=compile_kwargs["loss"],
                  metrics=compile_kwargs["metrics"])
    return model
