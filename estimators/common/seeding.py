"""Seed the global random sources for the duration of one fit, then put them back.

A seeded fit does not depend on global random state: ``build_model`` seeds every initializer, dropout
layer and embedding, the ``tf.data`` pipeline shuffles with the seed and the hold-out split takes it.
What this context manager adds is for anything that still draws from a global source: Python's
``random`` (which also seeds any unseeded ``keras.random.SeedGenerator`` made during the fit), NumPy's
global generator and TensorFlow's global seed (which ``tf.data``'s shuffle combines with its own seed, so
an outer ``tf.random.set_seed`` would otherwise change the order). All three are saved and restored with
public APIs in a ``finally`` block, so a seeded fit leaves no global state behind.

``keras.utils.set_random_seed`` is not used: it also records a global seed and drops Keras's global
``SeedGenerator``, neither of which a public API can put back. Op determinism is not switched on either:
TensorFlow has a public switch to turn it on (``tf.config.experimental.enable_op_determinism``) but none
to turn it off again, and on CPU the fits are already bit-for-bit reproducible without it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed Python's, NumPy's and TensorFlow's global random sources with ``seed`` inside the block, and
    restore them on the way out, even on an exception (no-op for ``None``)."""
    if seed is None:
        yield
        return
    import tensorflow as tf

    saved_python = random.getstate()
    saved_numpy = np.random.get_state()
    saved_tf_seed = _tf_global_seed(tf)
    try:
        random.seed(seed)
        np.random.seed(seed)
        tf.random.set_seed(seed)
        yield
    finally:
        random.setstate(saved_python)
        np.random.set_state(saved_numpy)
        tf.random.set_seed(saved_tf_seed)


def _tf_global_seed(tf) -> int | None:
    """TensorFlow's global seed (``None`` when unset), read with the public ``tf.compat.v1.get_seed``."""
    return tf.compat.v1.get_seed(None)[0]
