"""TensorFlow internals: the size of its global gradient registry (a measurement, for benchmarks and tests)."""

from __future__ import annotations


def gradient_registry_size() -> int:
    """Entries in TensorFlow's global gradient registry: every traced ``tf.custom_gradient`` adds one, never
    removed (the leak :func:`estimators.compat.keras.skip_single_replica_all_reduce` stops)."""
    # Why internal: the registry is tensorflow.python.framework.ops._gradient_registry (a Registry whose
    # entries are in _registry); TensorFlow has no public view of it.
    from tensorflow.python.framework import ops

    return len(ops._gradient_registry._registry)
