"""Stacked trials (``estimators.stacked.model``): K members in one model train exactly as K lone MLPs would."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from estimators.mlp.build import build_model
from estimators.stacked.model import build_stacked_model, group_members

N_FEATURES, N_HIDDEN, BATCH = 5, 2, 32
#: four different configurations: widths and learning rates differ (dropout off for equality)
MEMBERS = [
    {"n_neurons": 16, "learning_rate": 1e-3},
    {"n_neurons": 8, "learning_rate": 3e-3},
    {"n_neurons": 12, "learning_rate": 5e-4},
    {"n_neurons": 4, "learning_rate": 1e-2},
]


def data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype("float32")
    y = (x[:, 0] - 0.5 * x[:, 1] ** 2 + 0.1 * rng.normal(size=n)).astype("float32")
    return x, y


def lone_models(members=MEMBERS):
    """The members as plain ``build_model`` MLPs (Adam), each with its own seeded Glorot weights."""
    return [build_model(N_HIDDEN, m["n_neurons"], m["learning_rate"], n_features=N_FEATURES, optimizer="adam",
                        seed=10 * i) for i, m in enumerate(members)]


def stack_of(lones, members=MEMBERS):
    """A stack whose members start from the lone models' weights."""
    stack = build_stacked_model(members, N_FEATURES, n_hidden=N_HIDDEN, seed=0)
    for i, lone in enumerate(lones):
        stack.set_member_weights(i, lone)
    return stack


def max_difference(stack, index, lone):
    return max(float(np.abs(a - b).max()) for a, b in zip(stack.member_weights(index), lone.get_weights(), strict=True))


@pytest.fixture(params=["float32", "float64"])
def tolerance(request):
    """The weight tolerance under each float type: 1e-5 in float32 (XLA's and Keras' sums run in different
    orders; measured ~6e-8), and float64 shows the updates are the same arithmetic (~1e-16)."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(request.param)
    keras.config.set_dtype_policy(request.param)  # layers read the (cached) policy, not floatx
    yield 1e-5 if request.param == "float32" else 1e-12
    keras.config.set_floatx(floatx)
    keras.config.set_dtype_policy(policy)


def fit(model, x, y, epochs):
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0)


def test_each_member_of_a_stack_of_four_trains_as_its_lone_model(tolerance):
    x, y = data()
    lones = lone_models()
    stack = stack_of(lones)
    assert stack.learning_rates.tolist() == pytest.approx([m["learning_rate"] for m in MEMBERS])
    fit(stack, x, y, 3)
    for lone in lones:
        fit(lone, x, y, 3)
    for i, lone in enumerate(lones):
        assert max_difference(stack, i, lone) < tolerance, f"member {i}"
        assert float(stack.steps[i]) == int(lone.optimizer.iterations) == 3 * 5
    # the narrower members' padded units stayed exactly zero
    width = MEMBERS[3]["n_neurons"]
    assert not np.asarray(stack.kernels[0])[3, :, width:].any()
    assert not np.asarray(stack.kernels[1])[3, width:, :].any()
    assert not np.asarray(stack.kernels[2])[3, width:, :].any()
    # members evaluate as their lone models, and come out as ordinary models with the same predictions
    losses = stack.evaluate_members(x, y)
    assert losses.shape == (4,)
    np.testing.assert_allclose(losses, [lone.evaluate(x, y, verbose=0) for lone in lones], rtol=1e-5)
    exported = stack.member_model(1)
    assert isinstance(exported, keras.Sequential)
    np.testing.assert_allclose(exported.predict(x, verbose=0), lones[1].predict(x, verbose=0), atol=1e-5)


def test_each_members_gradient_is_its_lone_gradient():
    """The loss is the SUM of the members' losses (a mean would shrink each gradient by 1/K)."""
    x, y = data(n=BATCH)
    lones = lone_models()
    stack = stack_of(lones)
    with tf.GradientTape() as tape:
        loss = stack.stack_loss(y, stack(x, training=True))
    grads = [np.asarray(g) for g in tape.gradient(loss, stack.params)]
    for i, lone in enumerate(lones):
        with tf.GradientTape() as tape:
            lone_loss = lone.compute_loss(x=x, y=y, y_pred=lone(x, training=True))
        for layer, g in enumerate(tape.gradient(lone_loss, lone.trainable_weights)):
            g = np.asarray(g)
            stacked = grads[layer][i][tuple(slice(0, n) for n in g.shape)]
            np.testing.assert_allclose(stacked, g, rtol=1e-5, atol=1e-7, err_msg=f"member {i} weight {layer}")


def test_a_frozen_member_stays_put_and_a_halved_learning_rate_is_its_own(tolerance):
    x, y = data()
    lones = lone_models()
    stack = stack_of(lones)
    fit(stack, x, y, 1)
    for lone in lones:
        fit(lone, x, y, 1)
    frozen = stack.member_weights(1)
    stack.freeze(1)
    stack.set_learning_rate(2, MEMBERS[2]["learning_rate"] / 2)  # a plateau schedule's step
    lones[2].optimizer.learning_rate.assign(MEMBERS[2]["learning_rate"] / 2)
    fit(stack, x, y, 2)
    for i in (0, 2, 3):
        fit(lones[i], x, y, 2)
    for before, after in zip(frozen, stack.member_weights(1), strict=True):
        np.testing.assert_array_equal(before, after)
    assert stack.frozen.tolist() == [False, True, False, False]
    assert stack.steps.numpy().tolist() == [15, 5, 15, 15]
    for i in (0, 1, 2, 3):
        assert max_difference(stack, i, lones[i]) < tolerance, f"member {i}"
    assert stack.members[2]["learning_rate"] == pytest.approx(MEMBERS[2]["learning_rate"] / 2)


def test_a_refilled_slot_starts_fresh_with_its_new_configuration():
    x, y = data()
    stack = build_stacked_model(MEMBERS, N_FEATURES, n_hidden=N_HIDDEN, seed=0)
    fit(stack, x, y, 1)
    stack.freeze(0)
    stack.reinitialize_member(0, {"n_neurons": 6, "learning_rate": 2e-3})
    assert stack.members[0] == {"n_neurons": 6, "learning_rate": pytest.approx(2e-3), "dropout": 0.0,
                                "frequency_scale": 0.1}
    assert not stack.frozen[0] and float(stack.steps[0]) == 0.0
    assert all(not np.asarray(m)[0].any() for m in (*stack.first_moments, *stack.second_moments))
    assert [w.shape for w in stack.member_weights(0)] == [(5, 6), (6,), (6, 6), (6,), (6, 1), (1,)]
    assert not np.asarray(stack.kernels[0])[0, :, 6:].any()
    assert not any(b.any() for b in stack.member_weights(0)[1::2])
    with pytest.raises(ValueError, match="do not fit"):
        stack.reinitialize_member(0, {"n_neurons": 17})


def test_glorot_scale_is_the_lone_models_whatever_k():
    lone = build_model(N_HIDDEN, 64, n_features=8, optimizer="adam", seed=3).get_weights()[0]
    limit = np.sqrt(6 / (8 + 64))
    for k in (1, 16):
        stack = build_stacked_model([{"n_neurons": 64}] * k + [{"n_neurons": 8}], 8, n_hidden=N_HIDDEN, seed=k)
        for i in range(k):
            kernel = stack.member_weights(i)[0]
            assert np.abs(kernel).max() <= limit
            assert kernel.std() == pytest.approx(lone.std(), rel=0.1)
            assert kernel.std() == pytest.approx(limit / np.sqrt(3), rel=0.1)
        narrow = stack.member_weights(k)[0]  # its own fans (8 in, 8 out), not the padded 64
        assert np.sqrt(6 / 16) * 0.8 < np.abs(narrow).max() <= np.sqrt(6 / 16)


def test_members_with_periodic_embeddings_train_as_their_lone_models(tolerance):
    """The default housing study's network: each member has its own frequencies (its frequency_scale),
    embedding kernel and bias, and trains as the lone ``build_model(numeric_embedding="periodic")``."""
    x, y = data()
    members = [{**m, "frequency_scale": scale} for m, scale in zip(MEMBERS, (0.05, 0.1, 0.3, 1.0), strict=True)]
    embedding = {"n_frequencies": 4, "embedding_dim": 3}
    lones = [build_model(N_HIDDEN, m["n_neurons"], m["learning_rate"], n_features=N_FEATURES, optimizer="adam",
                         numeric_embedding="periodic", frequency_scale=m["frequency_scale"], seed=10 * i,
                         **embedding) for i, m in enumerate(members)]
    stack = build_stacked_model(members, N_FEATURES, n_hidden=N_HIDDEN, embedding=embedding, seed=0)
    for i, lone in enumerate(lones):
        stack.set_member_weights(i, lone)
    fit(stack, x, y, 3)
    for lone in lones:
        fit(lone, x, y, 3)
    for i, lone in enumerate(lones):
        assert max_difference(stack, i, lone) < tolerance, f"member {i}"
    exported = stack.member_model(2)
    assert exported.get_layer("periodic_embedding").frequency_scale == 0.3
    np.testing.assert_allclose(exported.predict(x, verbose=0), lones[2].predict(x, verbose=0), atol=1e-5)


def test_a_members_embedding_is_drawn_at_its_own_frequency_scale():
    members = [{"n_neurons": 8, "frequency_scale": 0.01}, {"n_neurons": 8, "frequency_scale": 1.0}]
    stack = build_stacked_model(members, 8, n_hidden=1, embedding={}, seed=0)
    narrow, wide = (stack.member_weights(i)[0] for i in range(2))
    assert narrow.shape == (8, 16) and narrow.std() == pytest.approx(0.01, rel=0.2)
    assert wide.std() == pytest.approx(1.0, rel=0.2)
    assert stack.member_weights(0)[3].shape == (8 * 16, 8)  # the first Dense takes the embeddings
    with pytest.raises(ValueError, match="without the periodic embedding"):
        build_stacked_model(members, 8, n_hidden=1, seed=0).set_member_weights(0, stack.member_weights(0))


class MaskStream:
    """Dropout masks for a stack and for lone models alike: the uniform draw of (step, layer) is the same
    array for both, so a member and its lone model drop the same units in the same rows."""

    def __init__(self, width: int, k: int):
        self.width, self.k = width, k

    def uniform(self, step: int, layer: int, rows: int) -> np.ndarray:
        return np.random.default_rng((step, layer)).uniform(size=(rows, self.k, self.width))

    def for_stack(self, stack):
        calls = {"n": 0}

        def keep(shape, rate, layer):
            step = calls["n"] // N_HIDDEN
            calls["n"] += 1
            return self.uniform(step, layer, int(shape[0]))[:, :, : int(shape[2])] >= np.asarray(rate)
        return keep

    def for_lone(self, dropout, member: int, layer: int):
        calls = {"n": 0}
        rate = dropout.rate

        def call(inputs, training=False):
            if not training:
                return inputs
            keep = self.uniform(calls["n"], layer, int(inputs.shape[0]))[:, member, : int(inputs.shape[1])] >= rate
            calls["n"] += 1
            return keras.ops.where(keep, inputs / (1.0 - rate), keras.ops.zeros_like(inputs))
        return call


def test_with_dropout_on_each_member_trains_as_its_lone_model_given_the_same_masks():
    x, y = data()
    members = [{**m, "dropout": rate} for m, rate in zip(MEMBERS, (0.1, 0.0, 0.3, 0.5), strict=True)]
    lones = [build_model(N_HIDDEN, m["n_neurons"], m["learning_rate"], n_features=N_FEATURES, optimizer="adam",
                         dropout=m["dropout"], seed=10 * i) for i, m in enumerate(members)]
    stack = build_stacked_model(members, N_FEATURES, n_hidden=N_HIDDEN, seed=0, jit_compile=False)
    for i, lone in enumerate(lones):
        stack.set_member_weights(i, lone)
    masks = MaskStream(width=max(m["n_neurons"] for m in MEMBERS), k=len(MEMBERS))
    stack.dropout_keep = masks.for_stack(stack)
    stack.compile(optimizer=None, run_eagerly=True)
    for i, lone in enumerate(lones):
        dropouts = [layer for layer in lone.layers if isinstance(layer, keras.layers.Dropout)]
        for layer, dropout in enumerate(dropouts):
            dropout.call = masks.for_lone(dropout, i, layer)
        lone.compile(loss=lone.loss, optimizer=lone.optimizer, run_eagerly=True)
    fit(stack, x, y, 3)
    for lone in lones:
        fit(lone, x, y, 3)
    for i, lone in enumerate(lones):
        assert max_difference(stack, i, lone) < 1e-5, f"member {i}"


def test_dropout_masks_are_drawn_per_member():
    x, _ = data(n=64)
    stack = build_stacked_model([{"n_neurons": 32, "dropout": 0.5}] * 2, N_FEATURES, n_hidden=N_HIDDEN, seed=0)
    stack.set_member_weights(1, stack.member_weights(0))
    out = np.asarray(stack(x, training=True))
    assert not np.allclose(out[:, 0], out[:, 1])
    out = np.asarray(stack(x, training=False))
    np.testing.assert_array_equal(out[:, 0], out[:, 1])


def test_classification_members_and_grouping():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(96, N_FEATURES)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1)
    stack = build_stacked_model(MEMBERS[:2], N_FEATURES, "multiclass", 3, n_hidden=1, seed=0)
    fit(stack, x, y, 1)
    assert stack.predict(x, verbose=0).shape == (96, 2, 3)
    losses = stack.evaluate_members(x, y)
    np.testing.assert_allclose(losses, [stack.member_model(i).evaluate(x, y, verbose=0)[0] for i in range(2)],
                               rtol=1e-5)
    assert ((stack.evaluate_members(x, y, "accuracy") >= 0) & (stack.evaluate_members(x, y, "accuracy") <= 1)).all()
    configs = [{"n_hidden": 2, "batch_size": 32}, {"n_hidden": 1, "batch_size": 32}, {"n_hidden": 2, "batch_size": 32}]
    assert group_members(configs) == {(2, 32): [0, 2], (1, 32): [1]}
