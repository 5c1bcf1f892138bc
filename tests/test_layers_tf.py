"""``ts.layers`` against TensorFlow: the goldens in tests/data/tf_layers (made by its
make_goldens.py with ``tf.compat.v1.layers`` in graph mode) give, for fixed inputs and
variable values, each layer's output and the gradients of ``sum(y * up)`` with respect
to the input and the trainable variables; batch normalization's moving averages after one
and two training steps; and the variable names of a program that exercises how TF1 layers
pick names. No TensorFlow or numpy needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import torch
from tf_fixtures import DATA, read_npz

import torchscope as ts

GOLDEN = DATA / "tf_layers"
CONFIGS = json.loads((GOLDEN / "configs.json").read_text())
NAMES = json.loads((GOLDEN / "names.json").read_text())
ACTIVATIONS = {"relu": torch.relu}


def _cases(layer: str) -> dict[str, dict[str, torch.Tensor]]:
    """The golden arrays of ``layer``, by case (``k3_s1_valid/channels_last``, ``2d``)."""
    arrays = read_npz(GOLDEN / f"{layer}.npz")
    cases: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in arrays.items():
        parts = key.split("/")
        cut = 2 if parts[1] in ("channels_last", "channels_first") else 1
        cases.setdefault("/".join(parts[:cut]), {})["/".join(parts[cut:])] = value
    return cases


def _kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if "activation" in out:
        out["activation"] = ACTIVATIONS[out["activation"]]
    if isinstance(out.get("kernel_size"), list):
        out["kernel_size"] = tuple(out["kernel_size"])
    return out


def _close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(actual, expected, atol=2e-5, rtol=2e-5, msg=lambda m: f"{what}: {m}")


def _check_forward_and_gradients(
    golden: dict[str, torch.Tensor], run: Callable[[torch.Tensor], torch.Tensor], store: Any
) -> None:
    """Runs ``run`` on the golden input and compares the output and the gradients of
    ``sum(y * up)`` with respect to the input and each trainable variable."""
    x = golden["x"].clone().requires_grad_(True)
    y = run(x)
    _close(y, golden["y"], "output")
    variables = {ts.name_of(v).rsplit("/", 1)[1]: v for v in store.variables() if v.requires_grad}
    assert sorted(variables) == sorted(
        k[5:] for k in golden if k.startswith("grad/") and k != "grad/x"
    )
    grads = torch.autograd.grad((y * golden["up"]).sum(), [x, *variables.values()])
    _close(grads[0], golden["grad/x"], "gradient of the input")
    for (name, _), grad in zip(variables.items(), grads[1:], strict=True):
        _close(grad, golden[f"grad/{name}"], f"gradient of {name}")


@pytest.mark.parametrize("case", sorted(CONFIGS["dense"]))
def test_dense_matches_tensorflow(ts_store, case):
    golden = _cases("dense")[case]
    kwargs = _kwargs(CONFIGS["dense"][case]["kwargs"])
    inits = {"kernel_initializer": golden["var/kernel"]}
    if "var/bias" in golden:
        inits["bias_initializer"] = golden["var/bias"]
    _check_forward_and_gradients(golden, lambda x: ts.layers.dense(x, **kwargs, **inits), ts_store)
    assert list(ts_store) == ["dense/kernel"] + (["dense/bias"] if "var/bias" in golden else [])


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", sorted(CONFIGS["conv2d"]["cases"]))
def test_conv2d_matches_tensorflow(ts_store, case, fmt):
    golden = _cases("conv2d")[f"{case}/{fmt}"]
    kwargs = _kwargs(CONFIGS["conv2d"]["cases"][case])
    inits = {"kernel_initializer": golden["var/kernel"]}
    if "var/bias" in golden:
        inits["bias_initializer"] = golden["var/bias"]
    _check_forward_and_gradients(
        golden, lambda x: ts.layers.conv2d(x, data_format=fmt, **kwargs, **inits), ts_store
    )


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", sorted(CONFIGS["conv2d_transpose"]["cases"]))
def test_conv2d_transpose_matches_tensorflow(ts_store, case, fmt):
    golden = _cases("conv2d_transpose")[f"{case}/{fmt}"]
    kwargs = _kwargs(CONFIGS["conv2d_transpose"]["cases"][case])
    inits = {"kernel_initializer": golden["var/kernel"]}
    if "var/bias" in golden:
        inits["bias_initializer"] = golden["var/bias"]
    _check_forward_and_gradients(
        golden,
        lambda x: ts.layers.conv2d_transpose(x, data_format=fmt, **kwargs, **inits),
        ts_store,
    )
    assert ts_store["conv2d_transpose/kernel"].shape[2:] == (
        kwargs["filters"],
        3,
    )  # [h, w, out, in]


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", sorted(CONFIGS["max_pooling2d"]["cases"]))
@pytest.mark.parametrize("layer", ["max_pooling2d", "average_pooling2d"])
def test_pooling_matches_tensorflow(ts_store, layer, case, fmt):
    golden = _cases(layer)[f"{case}/{fmt}"]
    kwargs = _kwargs(CONFIGS[layer]["cases"][case])
    _check_forward_and_gradients(
        golden, lambda x: getattr(ts.layers, layer)(x, data_format=fmt, **kwargs), ts_store
    )


def _bn_initializers(golden: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {
        f"{name}_initializer": golden[f"var/{name}"]
        for name in ("gamma", "beta", "moving_mean", "moving_variance")
        if f"var/{name}" in golden
    }


@pytest.mark.parametrize("as_tensor", [False, True], ids=["bool", "tensor"])
@pytest.mark.parametrize(
    "case", sorted(c for c, v in CONFIGS["batch_normalization"].items() if v["training"])
)
def test_batch_normalization_training_matches_tensorflow(case, as_tensor):
    """Two training steps in a ScopedModule: outputs, gradients of the first, and the
    moving averages after each (updated in the forward, as TensorFlow's UPDATE_OPS)."""
    golden = _cases("batch_normalization")[case]
    kwargs = dict(CONFIGS["batch_normalization"][case]["kwargs"], **_bn_initializers(golden))
    training = torch.tensor(True) if as_tensor else True
    model = ts.ScopedModule(lambda x: ts.layers.batch_normalization(x, training=training, **kwargs))
    _check_forward_and_gradients(golden, model, model.store)
    store = model.store
    _close(store["batch_normalization/moving_mean"], golden["moving_mean/1"], "moving_mean, step 1")
    _close(
        store["batch_normalization/moving_variance"],
        golden["moving_variance/1"],
        "moving_variance, step 1",
    )
    with torch.no_grad():
        _close(model(golden["x2"]), golden["y2"], "output, step 2")
    _close(store["batch_normalization/moving_mean"], golden["moving_mean/2"], "moving_mean, step 2")
    _close(
        store["batch_normalization/moving_variance"],
        golden["moving_variance/2"],
        "moving_variance, step 2",
    )
    assert not store["batch_normalization/moving_mean"].requires_grad


@pytest.mark.parametrize("as_tensor", [False, True], ids=["bool", "tensor"])
@pytest.mark.parametrize(
    "case", sorted(c for c, v in CONFIGS["batch_normalization"].items() if not v["training"])
)
def test_batch_normalization_inference_matches_tensorflow(ts_store, case, as_tensor):
    golden = _cases("batch_normalization")[case]
    kwargs = dict(CONFIGS["batch_normalization"][case]["kwargs"], **_bn_initializers(golden))
    training = torch.tensor(False) if as_tensor else False
    _check_forward_and_gradients(
        golden,
        lambda x: ts.layers.batch_normalization(x, training=training, **kwargs),
        ts_store,
    )
    # the moving averages are left alone
    _close(ts_store["batch_normalization/moving_mean"], golden["var/moving_mean"], "moving_mean")
    _close(
        ts_store["batch_normalization/moving_variance"],
        golden["var/moving_variance"],
        "moving_variance",
    )


@pytest.mark.parametrize("case", sorted(CONFIGS["flatten"]))
def test_flatten_matches_tensorflow(case):
    golden = _cases("flatten")[case]
    y = ts.layers.flatten(golden["x"], data_format=CONFIGS["flatten"][case])
    assert torch.equal(y, golden["y"])


def test_regularization_losses_match_tensorflow(ts_store):
    """A scope regularizer and a layer's own: one loss per variable, their sum (TensorFlow
    lists them apart); the activity loss divided by the batch size, listed last."""
    golden = read_npz(GOLDEN / "regularization.npz")
    names = CONFIGS["regularization"]
    # TensorFlow's: the kernel's two losses (the scope's, then the layer's), the bias's,
    # the activity loss.
    assert [name.rsplit("/", 1)[0] for name in names] == [
        "s/dense/kernel/Regularizer",
        "s/dense/kernel/Regularizer",
        "s/dense/bias/Regularizer",
        "s/dense/ActivityRegularizer",
    ]
    with ts.variable_scope("s", regularizer=lambda w: 0.5 * (w * w).sum()):
        ts.layers.dense(
            golden["x"],
            3,
            kernel_initializer=golden["var/kernel"],
            bias_initializer=golden["var/bias"],
            kernel_regularizer=lambda w: 0.1 * w.abs().sum(),
            activity_regularizer=lambda y: (y * y).sum(),
        )
    losses = ts.regularization_losses()
    expected = golden["losses"]
    assert len(losses) == 3
    _close(losses[0], expected[0] + expected[1], "kernel's losses")
    _close(losses[1], expected[2], "bias's loss")
    _close(losses[2], expected[3], "activity loss")
    _close(ts.regularization_loss(), expected.sum(), "total")
    assert [len(ts.regularization_losses("s/dense/")), len(ts.regularization_losses("t/"))] == [
        3,
        0,
    ]


# -- names ---------------------------------------------------------------------------------------


def _net(x: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """make_goldens.py's ``net``."""
    L = ts.layers
    h = L.dense(x, 5, activation=torch.relu)
    h = L.dense(h, 3)
    c = L.conv2d(images, 4, 3, padding="same")
    c = L.batch_normalization(c, training=True)
    c = L.max_pooling2d(c, 2, 2)
    c = L.conv2d_transpose(c, 2, 3, strides=2, name="up")
    c = L.dropout(c, 0.5, training=True)
    return h, L.flatten(c)


def _names_steps(x: torch.Tensor, images: torch.Tensor) -> list[tuple[str, Callable[[], None]]]:
    """make_goldens.py's ``names_steps``, step by step, in torchscope."""
    L = ts.layers

    def unnamed():
        L.dense(x, 3)
        L.dense(x, 3)

    def pool_named_dense():
        L.max_pooling2d(images, 2, 2, name="dense")
        L.dense(x, 3)

    def named():
        L.dense(x, 3, name="fc")

    def named_again():
        L.dense(x, 3, name="fc")

    def named_reuse():
        L.dense(x, 3, name="fc", reuse=True)

    def unnamed_reuse():
        L.dense(x, 3, reuse=True)

    def unnamed_reuse_missing():
        L.conv2d(images, 4, 3, reuse=True)

    def all_layers():
        L.conv2d(images, 4, 3)
        L.conv2d_transpose(images, 2, 3, strides=2)
        L.batch_normalization(images, training=True)
        L.batch_normalization(x)
        L.dropout(x, 0.5, training=True)
        L.flatten(images)
        L.average_pooling2d(images, 2, 2)
        L.max_pooling2d(images, 2, 2)
        L.conv2d(images, 2, 1, use_bias=False)
        L.batch_normalization(images, center=False, scale=False)

    def scope_reuse():
        with ts.variable_scope("m"):
            _net(x, images)
        with ts.variable_scope("m", reuse=True):
            _net(x, images)

    def scope_twice():
        with ts.variable_scope("m"):
            _net(x, images)

    def auto_reuse():
        for _ in range(2):
            with ts.variable_scope("a", reuse=ts.AUTO_REUSE):
                L.dense(x, 3)
                L.dense(x, 3)
        with ts.variable_scope("a", reuse=ts.AUTO_REUSE):
            L.dense(x, 3)
            L.dense(x, 3)
            L.dense(x, 3)

    def layer_auto_reuse():
        with ts.variable_scope("n"):
            L.dense(x, 3, reuse=ts.AUTO_REUSE)
            L.dense(x, 3, reuse=ts.AUTO_REUSE)
            L.dense(x, 3)

    def explicit_reuse_in_auto():
        with ts.variable_scope("n2", reuse=ts.AUTO_REUSE):
            L.dense(x, 3, reuse=True)

    def template():
        t = ts.make_template("tmpl", _net)
        t(x, images)
        t(x, images)
        t2 = ts.make_template("tmpl", _net)
        t2(x, images)
        t2(x, images)

    def default_name_scope():
        for _ in range(2):
            with ts.variable_scope(None, default_name="block"):
                L.dense(x, 3)
                L.dense(x, 3)

    def reenter_no_reuse():
        with ts.variable_scope("outer"):
            with ts.variable_scope("inner"):
                L.dense(x, 3)
            with ts.variable_scope("inner"):
                L.dense(x, 3)

    def nested_named():
        with ts.variable_scope("enc"):
            L.dense(x, 3, name="fc")
            L.dense(x, 3, name="fc2")
        with ts.variable_scope("enc", reuse=True):
            L.dense(x, 3, name="fc")

    def reuse_scope_unnamed():
        with ts.variable_scope("r"):
            L.dense(x, 3)
            L.dense(x, 3)
        with ts.variable_scope("r") as scope:
            scope.reuse_variables()
            L.dense(x, 3)
            L.dense(x, 3)

    def module():
        with ts.variable_scope("module"):
            _net(x, images)

    steps = (
        unnamed,
        pool_named_dense,
        named,
        named_again,
        named_reuse,
        unnamed_reuse,
        unnamed_reuse_missing,
        all_layers,
        scope_reuse,
        scope_twice,
        auto_reuse,
        layer_auto_reuse,
        explicit_reuse_in_auto,
        template,
        default_name_scope,
        reenter_no_reuse,
        nested_named,
        reuse_scope_unnamed,
        module,
    )
    return [(f.__name__, f) for f in steps]


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(2, 4), torch.zeros(2, 6, 6, 3)


def test_variable_names_match_tensorflow(ts_store):
    """The naming program, step by step: the same variables (names, shapes, trainable
    flags, in creation order, made by the same step) and the same steps refused, with
    TensorFlow's errors."""
    made: dict[str, str] = {}
    steps = []
    for label, step in _names_steps(*_inputs()):
        try:
            step()
            error = None
        except ValueError as e:
            error = str(e)
        steps.append([label, error])
        for name in ts_store:
            made.setdefault(name, label)
    for (label, error), (tf_label, tf_error) in zip(steps, NAMES["steps"], strict=True):
        assert label == tf_label
        if tf_error is None:
            assert error is None, f"step {label}: {error}"
        else:
            assert error is not None, f"step {label} should have failed: {tf_error}"
            variable = tf_error.split()[1]  # "Variable fc/kernel already exists, ..."
            assert variable in error
            kind = "already exists" if "already exists" in tf_error else "does not exist"
            assert kind in error
    ours = [
        [name, list(v.shape), v.requires_grad, made[name]]
        for name, v in zip(ts_store, ts_store.variables(), strict=True)
    ]
    assert ours == NAMES["variables"]
    trainable = [ts.name_of(v) + ":0" for v in ts.trainable_variables()]
    assert trainable == NAMES["collections"]["trainable_variables"]
    # Updates ran in the forwards: nothing is left for UPDATE_OPS (TensorFlow lists 16 ops).
    assert len(NAMES["collections"]["update_ops"]) == 16
    assert ts.get_collection(ts.GraphKeys.UPDATE_OPS) == []


def _golden_of_step(step: str) -> list[list[Any]]:
    return [v[:3] for v in NAMES["variables"] if v[3] == step]


def test_scoped_module_names_match_tensorflow():
    """ScopedModule(net, name="module"): TensorFlow's names for net in scope "module", on
    every call (the second call reuses; a third with other inputs too)."""
    model = ts.ScopedModule(_net, name="module")
    for _ in range(3):
        model(*_inputs())
    ours = [[name, list(v.shape), v.requires_grad] for name, v in model.store.items()]
    assert ours == _golden_of_step("module")


def test_template_names_match_tensorflow(ts_store):
    """make_template: each template's first call names its layers as TensorFlow does, and
    every later call gets the same names (reusing)."""
    _, template_steps = None, [s for s in _names_steps(*_inputs()) if s[0] == "template"]
    template_steps[0][1]()
    ours = [[name, list(v.shape), v.requires_grad] for name, v in ts_store.items()]
    assert ours == _golden_of_step("template")
