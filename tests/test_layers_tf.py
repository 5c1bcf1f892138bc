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
