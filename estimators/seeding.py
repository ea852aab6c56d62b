"""Seed every random source for the duration of one fit, then put everything back.

scikeras seeds Python, NumPy and TensorFlow but not Keras 3's global ``SeedGenerator``, and op
determinism switched on inside a failing fit must not outlive it. This context manager saves and
restores all of them in a ``finally`` block, so a seeded fit leaves no global state behind.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Make the enclosed Keras work deterministic for ``seed`` (no-op for ``None``)."""
    if seed is None:
        yield
        return
    import keras
    import tensorflow as tf
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils
    from tensorflow.python.eager import context
    from tensorflow.python.framework import config as tf_config

    saved_python = random.getstate()
    saved_numpy = np.random.get_state()
    saved_tf_seed = context.global_seed()
    saved_generator = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
    saved_keras_seed = global_state.get_global_attribute(rng_utils.GLOBAL_RANDOM_SEED)
    saved_env = os.environ.get("TF_DETERMINISTIC_OPS")
    determinism_was_on = tf_config.is_op_determinism_enabled()
    try:
        keras.utils.set_random_seed(int(seed))
        tf_config.enable_op_determinism()
        yield
    finally:
        random.setstate(saved_python)
        np.random.set_state(saved_numpy)
        tf.random.set_seed(saved_tf_seed)
        global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, saved_generator)
        global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, saved_keras_seed)
        if not determinism_was_on:
            tf_config.disable_op_determinism()
        if saved_env is None:
            os.environ.pop("TF_DETERMINISTIC_OPS", None)
        else:
            os.environ["TF_DETERMINISTIC_OPS"] = saved_env
