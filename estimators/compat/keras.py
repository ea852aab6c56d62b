"""Keras internals: the TensorFlow optimizer's gradient all-reduce, skipped for one replica."""

from __future__ import annotations

import keras


def skip_single_replica_all_reduce(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Stop ``optimizer`` from leaking the traced training step of every fit (TensorFlow backend).

    Keras' TensorFlow optimizer sums the gradients over replicas with ``ReplicaContext.all_reduce``,
    even with one replica. Traced in a graph, that is a ``tf.custom_gradient``, which registers a
    gradient function under a new name in TensorFlow's global gradient registry and never removes it;
    the function holds the traced training step, so every fit of a new model kept its graph alive
    (0.7-0.8 MB per fit of a small MLP, more for bigger ones; ``clear_session``, ``gc.collect`` and
    other allocators do not help). A sum over one replica is the gradients themselves, so this returns
    them unchanged then and leaves real multi-replica training (``MirroredStrategy``, ...) as it was.
    """
    # Why internal: the sum is the TensorFlow optimizer's private method _all_reduce_sum_gradients
    # (keras/src/backend/tensorflow/optimizer.py), called by its update step; no public optimizer setting or
    # hook skips it, so this instance's method is replaced. Measured by benchmarks/memory.py.
    all_reduce = getattr(optimizer, "_all_reduce_sum_gradients", None)
    if all_reduce is None:  # not the TensorFlow backend's optimizer: nothing to change
        return optimizer
    import tensorflow as tf

    def sum_over_replicas(grads_and_vars):
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return list(grads_and_vars)
        return all_reduce(grads_and_vars)

    optimizer._all_reduce_sum_gradients = sum_over_replicas
    return optimizer


def iterators_per_epoch() -> int:
    """How many iterators Keras' ``fit`` creates of a ``tf.data`` dataset of known length per epoch: 2.

    Each new iterator of a seeded pipeline that reshuffles draws the next order, so a fit resumed after
    ``e`` epochs (``estimators/common/checkpoint.py``) skips ``2 * e`` orders to train on the ones the
    uninterrupted fit would have.
    """
    # Why internal: Keras' EpochIterator (keras/src/trainers/epoch_iterator.py) makes a new iterator when an
    # epoch starts (no steps_per_epoch given) and another after the epoch's last batch (it knows the number
    # of batches); no public API says how many it makes. tests/test_compat.py checks the orders a fit sees.
    return 2
