"""The ``tf.data`` input pipeline the estimators train and validate on."""

from __future__ import annotations

import numpy as np


def array_dataset(arrays, batch_size: int, shuffle: bool = False, seed: int | None = None):
    """A ``tf.data`` pipeline over in-memory arrays ``(X, y[, sample_weight])``, built once per fit.

    Keras's own array adapter gathers a freshly shuffled index for every batch, which for small models
    costs more than the training step itself; shuffling examples in a tf.data pipeline (seeded, so fits
    stay reproducible) is about twice as fast per epoch. Without ``shuffle`` the batches are cached
    (validation data). Floats are cast to Keras's floatx, as ``Model.fit`` does; X may have any number of
    dimensions (images, token ids: exact in float32 up to 2**24) or be a dict of arrays keyed by input name.
    """
    import keras
    import tensorflow as tf

    floatx = keras.backend.floatx()
    X, *rest = arrays
    if isinstance(X, dict):  # a model with several inputs: one array per input name
        X = {name: np.asarray(a).astype(floatx) for name, a in X.items()}
        n = len(next(iter(X.values())))
    else:
        X = np.asarray(X).astype(floatx)
        n = len(X)
    rest = [np.asarray(a) for a in rest if a is not None]
    tensors = (X, *(a.astype(floatx) if a.dtype.kind == "f" else a for a in rest))
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if not shuffle:
        return ds.batch(batch_size).cache()
    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
