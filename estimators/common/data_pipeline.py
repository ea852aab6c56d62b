"""The ``tf.data`` input pipeline the estimators train and validate on, and the seeded hold-out of the
validation rows."""

from __future__ import annotations

import numpy as np


def array_dataset(arrays, batch_size: int, shuffle: bool = False, seed: int | None = None, skip_orders: int = 0):
    """A ``tf.data`` pipeline over in-memory arrays ``(X, y[, sample_weight])``, built once per fit.

    Keras's own array adapter gathers a freshly shuffled index for every batch, which for small models
    costs more than the training step itself; shuffling examples in a tf.data pipeline (seeded, so fits
    stay reproducible) is about twice as fast per epoch. Without ``shuffle`` the batches are cached
    (validation data). Floats are cast to Keras's floatx, as ``Model.fit`` does; X may have any number of
    dimensions (images, token ids: exact in float32 up to 2**24) or be a dict of arrays keyed by input name.
    ``skip_orders``: the shuffled pipeline's first orders skipped (creating an iterator draws the next one), so
    that a resumed fit trains on the orders the uninterrupted one would have (``Model.fit`` makes
    ``estimators.compat.keras.iterators_per_epoch()`` iterators an epoch).
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
    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    for _ in range(skip_orders):  # a resumed fit: each new iterator draws the next order
        iter(ds)
    return ds


def holdout(X, y, sample_weight, fraction: float, seed: int | None, stratified: bool):
    """Split ``fraction`` of the (encoded) training rows off for early stopping (stratified by ``y`` for a
    classifier, when every class has two rows): ``(X, y, sample_weight, (X_valid, y_valid) or None)``."""
    from sklearn.model_selection import train_test_split

    n = len(X)
    n_valid = int(np.floor(n * fraction))
    if n_valid < 1 or n - n_valid < 1:
        return X, y, sample_weight, None
    stratify = y if stratified else None
    if stratify is not None:
        counts = np.unique(stratify, return_counts=True)[1]
        if counts.min() < 2 or n_valid < len(counts):
            stratify = None
    idx_train, idx_valid = train_test_split(np.arange(n), test_size=n_valid, random_state=seed, stratify=stratify)
    sw_train = None if sample_weight is None else sample_weight[idx_train]
    return X[idx_train], y[idx_train], sw_train, (X[idx_valid], y[idx_valid])
