"""``ts.layers`` as code uses it: wherever get_variable works (the default store, reusing
scopes, ScopedModule, make_template), TensorFlow's defaults, regularizers, constraints,
dtypes, batch norm's moving averages and dropout, and every refused argument. The numbers
against TensorFlow are in test_layers_tf.py."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

import torchscope as ts

L = ts.layers


def _names(store=None):
    store = store if store is not None else ts.get_default_store()
    return list(store)


# -- where layers work ---------------------------------------------------------------------------


def test_unnamed_layers_count_per_scope_entry():
    x = torch.ones(2, 4)
    L.dense(x, 3)
    L.dense(x, 3)
    with ts.variable_scope("block"):
        L.dense(x, 3)
    with ts.variable_scope("block", reuse=True):
        y = L.dense(x, 3)  # counters restart in the re-entered scope: block/dense again
    assert _names() == [
        "dense/kernel",
        "dense/bias",
        "dense_1/kernel",
        "dense_1/bias",
        "block/dense/kernel",
        "block/dense/bias",
    ]
    assert y.shape == (2, 3)


def test_named_layer_shares_with_reuse_only():
    x = torch.ones(2, 4)
    a = L.dense(x, 3, name="fc")
    with pytest.raises(ts.VariableExistsError, match="fc/kernel"):
        L.dense(x, 3, name="fc")
    b = L.dense(x, 3, name="fc", reuse=True)
    c = L.dense(x, 3, name="fc", reuse=ts.AUTO_REUSE)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert _names() == ["fc/kernel", "fc/bias"]
    with pytest.raises(ts.VariableNotFoundError, match="other/kernel"):
        L.dense(x, 3, name="other", reuse=True)
    with pytest.raises(ts.ShapeMismatchError, match="fc/kernel"):
        L.dense(x, 5, name="fc", reuse=True)


def test_auto_reuse_scope_rebuilt_every_step_reuses():
    """A training loop that builds the model every step in an AUTO_REUSE scope makes the
    variables once."""
    x = torch.ones(2, 4)
    for _ in range(3):
        with ts.variable_scope("model", reuse=ts.AUTO_REUSE):
            h = L.dense(x, 8, activation=torch.relu)
            L.dense(h, 2)
    assert _names() == [
        "model/dense/kernel",
        "model/dense/bias",
        "model/dense_1/kernel",
        "model/dense_1/bias",
    ]


def _model(x, training=False):
    h = L.conv2d(x, 4, 3, padding="same", activation=torch.relu)
    h = L.batch_normalization(h, training=training)
    h = L.max_pooling2d(h, 2, 2)
    h = L.conv2d_transpose(h, 2, 3, strides=2, padding="same")
    h = L.average_pooling2d(h, 2, 2)
    h = L.dropout(L.flatten(h), 0.5, training=training)
    return L.dense(h, 3)


MODEL_NAMES = [
    "conv2d/kernel",
    "conv2d/bias",
    "batch_normalization/gamma",
    "batch_normalization/beta",
    "batch_normalization/moving_mean",
    "batch_normalization/moving_variance",
    "conv2d_transpose/kernel",
    "conv2d_transpose/bias",
    "dense/kernel",
    "dense/bias",
]


def test_scoped_module_reuses_on_every_call():
    model = ts.ScopedModule(_model)
    x = torch.randn(2, 6, 6, 3)
    first = model(x)
    params = list(model.parameters())
    for training in (True, False, True):
        model(x, training=training)
    assert _names(model.store) == MODEL_NAMES
    assert list(model.parameters()) == params
    torch.testing.assert_close(model(x), model(x))
    assert first.shape == (2, 3)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [n for n in MODEL_NAMES if "moving" not in n]


def test_scoped_module_refuses_a_new_layer_after_the_first_call():
    calls = []

    def net(x):
        calls.append(1)
        y = L.dense(x, 3)
        return L.dense(y, 2) if len(calls) > 1 else y

    model = ts.ScopedModule(net)
    model(torch.ones(1, 4))
    with pytest.raises(ts.FrozenModuleError, match="dense_1/kernel"):
        model(torch.ones(1, 4))


def test_template_reuses_and_its_copies_get_unique_scopes():
    x = torch.randn(2, 6, 6, 3)
    template = ts.make_template("net", _model)
    template(x)
    template(x, training=True)
    other = ts.make_template("net", _model)
    other(x)
    assert _names() == [f"net/{n}" for n in MODEL_NAMES] + [f"net_1/{n}" for n in MODEL_NAMES]
    assert [ts.name_of(v) for v in template.trainable_variables] == [
        f"net/{n}" for n in MODEL_NAMES if "moving" not in n
    ]


def test_scope_defaults_apply_to_layers():
    """The scope's initializer reaches kernels (not biases, zeros by default, nor batch
    norm's own initializers); its dtype and custom getter apply too."""
    x = torch.ones(2, 4, dtype=torch.float64)
    seen = []

    def getter(getter, name, *args, **kwargs):
        seen.append(name)
        return getter(name, *args, **kwargs)

    with ts.variable_scope(
        "s", initializer=ts.constant_initializer(0.5), dtype=torch.float64, custom_getter=getter
    ):
        L.dense(x, 3)
        L.batch_normalization(x)
    store = ts.get_default_store()
    assert torch.equal(store["s/dense/kernel"], torch.full((4, 3), 0.5, dtype=torch.float64))
    assert torch.equal(store["s/dense/bias"], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(store["s/batch_normalization/gamma"], torch.ones(4, dtype=torch.float64))
    assert seen == _names()


def test_variables_take_the_inputs_dtype():
    L.dense(torch.ones(2, 4, dtype=torch.float64), 3)
    L.batch_normalization(torch.ones(2, 4, dtype=torch.bfloat16), training=True)
    dtypes = {name: v.dtype for name, v in ts.get_default_store().items()}
    assert dtypes["dense/kernel"] == torch.float64
    assert dtypes["batch_normalization/gamma"] == torch.float32  # 16-bit: float32 statistics
    with pytest.raises(ts.DtypeMismatchError, match="dense/kernel"):
        L.dense(torch.ones(2, 4), 3, name="dense", reuse=True)


def test_variables_stay_in_full_precision_under_autocast():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = L.dense(torch.ones(2, 4), 3)  # float32 inputs
        L.dense(h.bfloat16(), 2)  # bfloat16 inputs under autocast: float32 variables
    assert {v.dtype for v in ts.global_variables()} == {torch.float32}


def test_layers_build_on_the_meta_device():
    with torch.device("meta"):
        model = ts.ScopedModule(_model)
        y = model(torch.ones(2, 6, 6, 3), training=True)
    assert y.device.type == "meta" and _names(model.store) == MODEL_NAMES


def test_default_kernel_initializer_is_glorot_uniform():
    torch.manual_seed(0)
    L.dense(torch.ones(1, 300), 200)
    kernel = ts.get_default_store()["dense/kernel"]
    limit = (6 / (300 + 200)) ** 0.5
    assert kernel.abs().max() <= limit and kernel.abs().max() > 0.9 * limit


def test_trainable_false():
    L.dense(torch.ones(2, 4), 3, trainable=False)
    L.batch_normalization(torch.ones(2, 4), trainable=False)
    assert ts.trainable_variables() == []
    assert len(ts.global_variables()) == 6


# -- regularizers and constraints ----------------------------------------------------------------


def test_regularizers_once_per_variable_and_activity_loss_replaced_per_call():
    """Weight losses are computed from the current values (reuse adds none); the activity
    loss of each call replaces the same layer's loss from the call before."""
    model = ts.ScopedModule(
        lambda x: L.dense(
            x,
            2,
            kernel_initializer=ts.ones_initializer(),
            kernel_regularizer=lambda w: w.sum(),
            bias_regularizer=lambda b: b.sum() + 1.0,
            activity_regularizer=lambda y: y.sum(),
        )
    )
    for scale in (1.0, 2.0, 3.0):
        model(torch.full((4, 3), scale))
    losses = model.store.regularization_losses()
    assert [v.item() for v in losses] == [6.0, 1.0, 3.0 * 3 * 2 * 4 / 4]
    assert model.store is not ts.get_default_store()
    # the default store, which the module was built in, lists them too (as TensorFlow did)
    assert [v.item() for v in ts.regularization_losses()] == [v.item() for v in losses]


def test_activity_loss_in_compiled_calls_and_copies():
    def net(x):
        return L.dense(x, 2, activity_regularizer=lambda y: y.abs().sum(), name="fc")

    model = ts.ScopedModule(net)
    model(torch.ones(4, 3))
    compiled = torch.compile(model, fullgraph=True)
    y = compiled(torch.full((4, 3), 2.0))
    (loss,) = model.store.regularization_losses()
    torch.testing.assert_close(loss, y.abs().sum() / 4)
    assert model.store.regularization_losses("fc/") == [loss]
    clone = copy.deepcopy(model)
    (copied,) = clone.store.regularization_losses()
    assert copied.grad_fn is None and torch.equal(copied, loss.detach())


def test_constraints_are_applied_by_apply_constraints():
    L.dense(torch.ones(2, 4), 3, kernel_constraint=lambda w: w.clamp(-0.1, 0.1))
    kernel = ts.get_default_store()["dense/kernel"]
    with torch.no_grad():
        kernel.fill_(1.0)
    ts.apply_constraints()
    assert torch.equal(kernel, torch.full((4, 3), 0.1))


# -- batch normalization -------------------------------------------------------------------------


def test_batch_norm_updates_only_in_training_and_outside_autograd():
    x = torch.randn(16, 3) * 2 + 1
    gamma_before = None
    for training, changes in ((False, False), (torch.tensor(False), False), (True, True)):
        with ts.variable_scope("bn", reuse=ts.AUTO_REUSE):
            y = L.batch_normalization(x.requires_grad_(), training=training, momentum=0.5)
        store = ts.get_default_store()
        mean = store["bn/batch_normalization/moving_mean"]
        moved = not torch.equal(mean, torch.zeros(3))
        assert moved == changes
        assert mean.grad_fn is None and not mean.requires_grad
        gamma_before = store["bn/batch_normalization/gamma"]
        y.sum().backward()
    torch.testing.assert_close(mean, 0.5 * x.mean(0).detach())
    assert gamma_before.grad is not None
    assert ts.get_collection(ts.GraphKeys.UPDATE_OPS) == []


def test_batch_norm_updates_once_under_checkpoint():
    """ts.checkpoint recomputes the forward in backward; the moving averages are updated
    by the forward only."""
    x = torch.randn(8, 3) * 2 + 1
    model = ts.ScopedModule(
        lambda x: ts.checkpoint(lambda t: L.batch_normalization(t, training=True, momentum=0.5), x)
    )
    model(x).sum().backward()
    moving = model.store["batch_normalization/moving_mean"]
    torch.testing.assert_close(moving, 0.5 * x.mean(0))
    assert model.store["batch_normalization/gamma"].grad is not None


def test_batch_norm_training_tensor_picks_without_reading_it():
    x = torch.randn(8, 2)
    with ts.variable_scope("a"):
        a = L.batch_normalization(x, training=True)
    with ts.variable_scope("b"):
        b = L.batch_normalization(x, training=torch.tensor([True]))
    torch.testing.assert_close(a, b)
    store = ts.get_default_store()
    assert torch.equal(
        store["a/batch_normalization/moving_variance"],
        store["b/batch_normalization/moving_variance"],
    )


def test_batch_norm_axes():
    x = torch.randn(2, 3, 4, 5)
    L.batch_normalization(x, axis=1, training=True)
    L.batch_normalization(x, axis=[1, 3], training=True)
    shapes = {n: tuple(v.shape) for n, v in ts.get_default_store().items()}
    assert shapes["batch_normalization/gamma"] == (3,)
    assert shapes["batch_normalization_1/gamma"] == (1, 3, 1, 5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(renorm=True), ValueError, "'renorm' is not supported"),
        (dict(virtual_batch_size=2), ValueError, "'virtual_batch_size' is not supported"),
        (dict(adjustment=lambda s: (1, 0)), ValueError, "'adjustment' is not supported"),
        (dict(axis=2), ValueError, "'axis' must name distinct dimensions"),
        (dict(axis=[0, -2]), ValueError, "'axis' must name distinct"),
        (dict(axis="x"), TypeError, "'axis' must be an int"),
        (dict(momentum="0.9"), TypeError, "'momentum' must be a number"),
        (dict(training="yes"), TypeError, "'training' must be a bool"),
        (dict(training=torch.ones(2, dtype=torch.bool)), ValueError, "one-element"),
        (dict(center=1), TypeError, "'center' must be a bool"),
        (dict(fused="auto"), TypeError, "'fused' must be a bool"),
    ],
)
def test_batch_norm_refuses(kwargs, error, match):
    with pytest.raises(error, match=match):
        L.batch_normalization(torch.ones(2, 3), **kwargs)
    assert _names() == []


# -- dropout and flatten -------------------------------------------------------------------------


def test_dropout_scales_and_broadcasts_its_mask():
    x = torch.ones(4, 5, 6)
    y = L.dropout(x, 0.25, noise_shape=[None, 1, 6], training=True)
    assert set(y.unique().tolist()) <= {0.0, torch.tensor(4 / 3).item()}
    assert torch.equal(y, y[:, :1, :].expand_as(y))  # one mask along dimension 1
    assert L.dropout(x, 0.0, training=True) is x
    assert L.dropout(x, 1.0) is x  # outside training any rate returns the inputs
    kept = L.dropout(x, 0.5, training=torch.tensor(False))
    assert torch.equal(kept, x)


def test_dropout_with_a_seed_repeats_its_sequence():
    x = torch.ones(64)

    def run():
        model = ts.ScopedModule(lambda x: L.dropout(x, 0.5, seed=7, training=True))
        return [model(x) for _ in range(2)]

    first, second = run(), run()
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], first[1])  # each call draws a new mask


def test_flatten_of_1d_and_channels_first():
    assert L.flatten(torch.arange(3.0)).shape == (3, 1)
    x = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(L.flatten(x, data_format="channels_first"), x.movedim(1, -1).reshape(2, 12))
    assert L.flatten(torch.ones(2, 3, dtype=torch.int64)).dtype == torch.int64


def test_layers_without_variables_take_names_as_tensorflow():
    x = torch.ones(2, 4)
    L.dropout(x, name="dense")  # opens dense (made unique), as TensorFlow's layer does
    L.dense(x, 3)
    assert _names() == ["dense_1/kernel", "dense_1/bias"]


# -- refused arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: L.dense([[1.0]], 2),
            TypeError,
            r"dense: argument 'inputs' must be a torch.Tensor",
        ),
        (lambda: L.dense(torch.ones(2, 3, dtype=torch.int64), 2), TypeError, "floating-point"),
        (lambda: L.dense(torch.ones(3), 2), ValueError, "'inputs' must be at least 2-D"),
        (lambda: L.dense(torch.ones(2, 3), -1), ValueError, "'units' must be at least 0"),
        (lambda: L.dense(torch.ones(2, 3), 2.5), TypeError, "'units' must be an int"),
        (lambda: L.dense(torch.ones(2, 3), 2, activation="relu"), TypeError, "torch.relu"),
        (lambda: L.dense(torch.ones(2, 3), 2, use_bias=None), TypeError, "'use_bias' must be"),
        (lambda: L.dense(torch.ones(2, 3), 2, name=3), TypeError, "'name' must be a str"),
        (lambda: L.dense(torch.ones(2, 3), 2, reuse="yes"), ValueError, "reuse must be"),
        (lambda: L.conv2d(torch.ones(1, 4, 4), 2, 3), ValueError, "'inputs' must be 4-D"),
        (lambda: L.conv2d(torch.ones(1, 4, 4, 1), 0, 3), ValueError, "'filters' must be positive"),
        (lambda: L.conv2d(torch.ones(1, 4, 4, 1), 2, (3, 3, 3)), ValueError, "'kernel_size'"),
        (lambda: L.conv2d(torch.ones(1, 4, 4, 1), 2, 0), ValueError, "'kernel_size' must be"),
        (lambda: L.conv2d(torch.ones(1, 4, 4, 1), 2, 3, padding="full"), ValueError, "'padding'"),
        (
            lambda: L.conv2d(torch.ones(1, 4, 4, 1), 2, 3, data_format="NHWC"),
            ValueError,
            "'data_format' must be 'channels_last' or 'channels_first'",
        ),
        (
            lambda: L.conv2d(torch.ones(1, 9, 9, 1), 2, 3, strides=2, dilation_rate=2),
            ValueError,
            "'strides' .* and 'dilation_rate' .* cannot both be above 1",
        ),
        (lambda: L.dropout(torch.ones(2), 1.5), ValueError, r"'rate' must be in \[0, 1\]"),
        (lambda: L.dropout(torch.ones(2), "0.5"), TypeError, "'rate' must be a number"),
        (lambda: L.dropout(torch.ones(2), 1.0, training=True), ValueError, "below 1 in training"),
        (lambda: L.dropout(torch.ones(2, 3), noise_shape=[2]), ValueError, "'noise_shape'"),
        (lambda: L.dropout(torch.ones(2, 3), noise_shape=[2, 2]), ValueError, "broadcast"),
        (lambda: L.dropout(torch.ones(2), seed=1.5), TypeError, "'seed' must be an int"),
        (lambda: L.flatten(torch.ones(2, 3), data_format=1), ValueError, "'data_format'"),
    ],
)
def test_refused_arguments_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
    assert _names() == []


def test_conv2d_relu_runs_the_fused_op_with_the_same_numbers():
    x = torch.randn(2, 7, 7, 3)
    with ts.variable_scope("s", initializer=ts.random_normal_initializer(seed=1)):
        fused = L.conv2d(x, 4, 3, strides=2, padding="same", activation=torch.relu)
        plain = L.conv2d(x, 4, 3, strides=2, padding="same", activation=lambda t: t.relu())
    torch.testing.assert_close(fused, plain)


# -- the typed example, torch.compile ----------------------------------------------------------


def test_the_typed_example_trains():
    spec = importlib.util.spec_from_file_location(
        "typed_layers", Path(__file__).parent / "typed" / "layers.py"
    )
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.train() == [
        "conv2d/kernel",
        "conv2d/bias",
        "batch_normalization/gamma",
        "batch_normalization/beta",
        "batch_normalization/moving_mean",
        "batch_normalization/moving_variance",
        "up/kernel",
        "up/bias",
        "dense/kernel",
        "dense/bias",
    ]


def test_a_built_module_of_layers_compiles_without_graph_breaks():
    """After the first call, torch.compile(fullgraph=True) traces the layers (scopes,
    reuse lookups, batch norm's in-place updates) in one graph, with eager's numbers."""
    model = ts.ScopedModule(_model)
    x = torch.randn(2, 6, 6, 3)
    model(x, training=True)
    import torch._dynamo as dynamo

    explained = dynamo.explain(model)(x, training=False)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(model, fullgraph=True)
    moving = model.store["batch_normalization/moving_mean"]
    before = moving.clone()
    torch.testing.assert_close(compiled(x), model(x))
    compiled(x, training=True)
    assert not torch.equal(moving, before)  # updated in place by the compiled call
