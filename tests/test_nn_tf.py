"""ts.nn against TensorFlow: forward results and gradients from tests/data/tf_nn (written by
make_goldens.py there with TensorFlow 2.21's ``tf.compat.v1.nn``), read without TensorFlow.

Each golden case holds the inputs TensorFlow was given, its outputs, and the gradients of
``sum(y * gy)`` for the upstream gradient ``gy = cos(0.7 * i + 0.3)`` (flat index ``i``), which
``upstream`` computes here the same way. float32 results must agree to 1e-5 relative (of the
largest magnitude in the array), float64 ones to 1e-10.
"""

from __future__ import annotations

import functools
import json

import pytest
import torch
from tf_fixtures import DATA, read_npz

import torchscope as ts

GOLDENS = DATA / "tf_nn"
CASES: dict[str, list[dict]] = json.loads((GOLDENS / "cases.json").read_text())


@functools.cache
def _group(group: str) -> dict[str, torch.Tensor]:
    return read_npz(GOLDENS / f"{group}.npz")


def golden(group: str, case: dict) -> dict[str, torch.Tensor]:
    """The case's arrays by name (``x``, ``y``, ``grad/x``, ...)."""
    prefix = case["id"] + "/"
    return {k[len(prefix) :]: v for k, v in _group(group).items() if k.startswith(prefix)}


def cases(group: str, **where) -> list:
    """pytest parameters for the group's cases (those whose arguments match ``where``)."""
    return [
        pytest.param(c, id=c["id"])
        for c in CASES[group]
        if all(c.get(k) == v for k, v in where.items())
    ]


def upstream(shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    n = shape.numel()
    flat = torch.cos(0.7 * torch.arange(n, dtype=torch.float64) + 0.3)
    return flat.reshape(shape).to(dtype)


def assert_matches(got: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    assert got.shape == expected.shape, what
    assert got.dtype == expected.dtype, what
    tol = 1e-5 if expected.dtype == torch.float32 else 1e-10
    scale = max(expected.abs().max().item(), 1e-3) if expected.numel() else 1.0
    torch.testing.assert_close(
        got, expected, rtol=tol, atol=tol * scale, msg=lambda m: f"{what}: {m}"
    )


def check(fn, g: dict[str, torch.Tensor], names: list[str], outputs=("y",), through: int = 1):
    """Runs ``fn(**inputs)`` on the golden inputs ``names`` and compares its outputs, and the
    gradients of the sum of ``output * upstream`` over the first ``through`` outputs with respect
    to the inputs TensorFlow differentiated (those with a ``grad/<name>``), with TensorFlow's."""
    differentiable = [k for k in names if f"grad/{k}" in g]
    inputs = {k: g[k].clone().requires_grad_(k in differentiable) for k in names}
    result = fn(**inputs)
    result = result if isinstance(result, tuple) else (result,)
    for name, r in zip(outputs, result, strict=True):
        assert_matches(r.detach(), g[name], name)
    ys = result[:through]
    gys = [upstream(y.shape, y.dtype) for y in ys]
    grads = torch.autograd.grad(ys, [inputs[k] for k in differentiable], gys)
    for k, grad in zip(differentiable, grads, strict=True):
        assert_matches(grad, g[f"grad/{k}"], f"grad/{k}")


# ---------------------------------------------------------------- conv2d_transpose


@pytest.mark.parametrize("case", cases("conv2d_transpose"))
def test_conv2d_transpose_matches_tensorflow(case):
    g = golden("conv2d_transpose", case)

    def fn(value, filter):
        return ts.nn.conv2d_transpose(
            value,
            filter,
            case["output_shape"],
            case["strides"],
            case["padding"],
            data_format=case["data_format"],
            dilations=case["dilations"],
        )

    check(fn, g, ["value", "filter"])


@pytest.mark.parametrize("case", cases("depthwise_conv2d"))
def test_depthwise_conv2d_matches_tensorflow(case):
    g = golden("depthwise_conv2d", case)

    def fn(input, filter):
        return ts.nn.depthwise_conv2d(
            input, filter, case["strides"], case["padding"], case["rate"], None, case["data_format"]
        )

    check(fn, g, ["input", "filter"])


# ---------------------------------------------------------------- pooling


@pytest.mark.parametrize("case", cases("pool"))
def test_pool_matches_tensorflow(case):
    g = golden("pool", case)
    op = getattr(ts.nn, case["op"])

    def fn(value):
        return op(value, case["ksize"], case["strides"], case["padding"], case["data_format"])

    check(fn, g, ["value"])


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize("case", cases("norm", op="moments"))
def test_moments_matches_tensorflow(case):
    def fn(x):
        return ts.nn.moments(x, case["axes"], keep_dims=case["keep_dims"])

    check(fn, golden("norm", case), ["x"], ("mean", "variance"), through=2)


@pytest.mark.parametrize("case", cases("norm", op="batch_normalization"))
def test_batch_normalization_matches_tensorflow(case):
    g = golden("norm", case)
    names = [k for k in ("x", "mean", "variance", "offset", "scale") if k in g]

    def fn(x, mean, variance, offset=None, scale=None):
        return ts.nn.batch_normalization(x, mean, variance, offset, scale, 0.001)

    check(fn, g, names)


@pytest.mark.parametrize("case", cases("norm", op="fused_batch_norm"))
def test_fused_batch_norm_matches_tensorflow(case):
    """Training returns the batch variance with Bessel's correction, and the running averages
    for exponential_avg_factor != 1; inference returns mean and variance as given."""

    def fn(x, scale, offset, mean, variance):
        return ts.nn.fused_batch_norm(
            x,
            scale,
            offset,
            mean,
            variance,
            epsilon=case["epsilon"],
            data_format=case["data_format"],
            is_training=case["is_training"],
            exponential_avg_factor=case["exponential_avg_factor"],
        )

    names = ["x", "scale", "offset", "mean", "variance"]
    check(fn, golden("norm", case), names, ("y", "batch_mean", "batch_variance"))


# ---------------------------------------------------------------- losses


@pytest.mark.parametrize("case", cases("losses"))
def test_losses_match_tensorflow(case):
    g = golden("losses", case)
    op = getattr(ts.nn, case["op"])
    if case["op"] == "l2_loss":
        check(op, g, ["t"])
    elif "axis" in case:
        check(lambda labels, logits: op(labels, logits, axis=case["axis"]), g, ["labels", "logits"])
    else:
        check(lambda labels, logits: op(labels=labels, logits=logits), g, ["labels", "logits"])


X = torch.randn(2, 3, 4, 5)  # NHWC
W_T = torch.randn(3, 3, 6, 5)  # [h, w, out, in]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(output_shape=[2, 7, 9, 6]),
            ValueError,
            r"argument 'output_shape' \(\[2, 7, 9, 6\]\) does not fit 'value' \(shape "
            r"\[2, 3, 4, 5\], data_format='NHWC'\): conv2d with strides=\[2, 2\], "
            r"padding='SAME', dilations=\[1, 1\] and a 3x3 filter maps output height 7 to 4, "
            r"not to the 3 of 'value'; output heights that fit: 5 to 6",
        ),
        (
            dict(output_shape=[2, 6, 10, 6], strides=1, padding="VALID"),
            ValueError,
            r".* maps output height 6 to 4, not to the 3 of 'value'; output heights that fit: 5$",
        ),
        (
            dict(output_shape=[3, 5, 7, 6]),
            ValueError,
            r"argument 'output_shape' \(\[3, 5, 7, 6\]\) has batch size 3, 'value' \(shape "
            r"\[2, 3, 4, 5\]\) has 2",
        ),
        (
            dict(output_shape=[2, 5, 7, 4]),
            ValueError,
            r"argument 'output_shape' \(\[2, 5, 7, 4\]\) has 4 channels, 'filter' \(shape "
            r"\[3, 3, 6, 5\]\) has 6 out_channels \(dim 2 of \[height, width, out_channels, "
            r"in_channels\]\)",
        ),
        (
            dict(filter=torch.randn(3, 3, 6, 4)),
            ValueError,
            r"argument 'filter' has 4 in_channels \(dim 3 .* must equal the 5 channels of 'value'",
        ),
        (
            dict(output_shape=[2, 5, 7]),
            ValueError,
            r"argument 'output_shape' must be a list, tuple or 1-D integer tensor of 4 "
            r"non-negative ints in data_format order \(\[batch, height, width, channels\]\) or "
            r"of 2 \(\[height, width\]\), got \[2, 5, 7\]",
        ),
        (
            dict(output_shape=torch.tensor([2.0, 5, 7, 6])),
            ValueError,
            r"argument 'output_shape' must be a list, tuple or 1-D integer tensor",
        ),
        (dict(input=X), ValueError, r"cannot specify both 'value' and 'input'"),
        (dict(filters=W_T), ValueError, r"cannot specify both 'filter' and 'filters'"),
        (dict(strides=None), ValueError, r"argument 'strides' must be a positive int .* None"),
        (dict(value=None), TypeError, r"argument 'value' must be a torch.Tensor, got NoneType"),
        (dict(filter=[[1.0]]), TypeError, r"argument 'filter' must be a torch.Tensor, got list"),
        (
            dict(filter=W_T.double()),
            ValueError,
            r"argument 'filter' must have the dtype of 'value' \(torch.float32\), got "
            r"torch.float64",
        ),
        (dict(padding="FULL"), ValueError, r"argument 'padding' must be 'SAME', 'VALID' or 4"),
        (
            dict(filter=torch.randn(3, 3, 6)),
            ValueError,
            r"argument 'filter' must be 4-D \(\[height, width, out_channels, in_channels\]\)",
        ),
        (dict(data_format="NWHC"), ValueError, r"argument 'data_format' must be 'NHWC' or 'NCHW'"),
    ],
)
def test_conv2d_transpose_errors(kwargs, error, message):
    args = dict(value=X, filter=W_T, output_shape=[2, 5, 7, 6], strides=2, padding="SAME")
    args.update(kwargs)
    with pytest.raises(error, match=rf"torchscope\.nn\.conv2d_transpose: {message}"):
        ts.nn.conv2d_transpose(**args)


def test_conv2d_transpose_output_shape_spellings():
    expected = ts.nn.conv2d_transpose(X, W_T, [2, 5, 7, 6], 2)
    for shape in ([5, 7], (2, 5, 7, 6), torch.tensor([2, 5, 7, 6]), torch.tensor([5, 7])):
        torch.testing.assert_close(ts.nn.conv2d_transpose(X, W_T, shape, 2), expected)
    got = ts.nn.conv2d_transpose(input=X, filters=W_T, output_shape=[2, 5, 7, 6], strides=2)
    torch.testing.assert_close(got, expected)
    nchw = ts.nn.conv2d_transpose(X.permute(0, 3, 1, 2), W_T, [2, 6, 5, 7], 2, data_format="NCHW")
    torch.testing.assert_close(nchw, expected.permute(0, 3, 1, 2))


def test_conv2d_transpose_is_the_gradient_of_conv2d():
    """TensorFlow's definition, for sizes and paddings beyond the goldens'."""
    torch.manual_seed(0)
    for size, stride, padding in [
        ((8, 3), 3, "SAME"),
        ((6, 6), 2, [[0, 0], [3, 1], [0, 2], [0, 0]]),
        ((1, 1), 3, "SAME"),
        ((4, 9), (1, 2), "VALID"),
    ]:
        x = torch.randn(1, *size, 2, dtype=torch.float64, requires_grad=True)
        f = torch.randn(3, 2, 2, 4, dtype=torch.float64)
        y = ts.nn.conv2d(x, f, stride, padding)
        gy = torch.randn_like(y)
        (expected,) = torch.autograd.grad(y, x, gy)
        got = ts.nn.conv2d_transpose(gy, f, [1, *size, 2], stride, padding)
        torch.testing.assert_close(got, expected)


def test_conv2d_transpose_to_an_empty_output():
    out = ts.nn.conv2d_transpose(torch.randn(2, 0, 4, 5), W_T, [2, 0, 7, 6], 2)
    assert out.shape == (2, 0, 7, 6)


@pytest.mark.parametrize(
    "fn, kwargs, error, message",
    [
        (
            "max_pool",
            dict(ksize=5, padding="VALID"),
            ValueError,
            r"argument 'ksize' \(height 5\) is larger than the height of 'value' after padding "
            r"\(3\) \(value shape \[2, 3, 4, 5\] \(NHWC\), ksize=5, padding='VALID'\)",
        ),
        (
            "avg_pool",
            dict(ksize=[2, 2, 2, 1]),
            ValueError,
            r"argument 'ksize' must be 1 in the batch and channel dimensions",
        ),
        ("max_pool", dict(ksize=0), ValueError, r"argument 'ksize' must be a positive int"),
        ("avg_pool", dict(ksize=[1, 2, 2]), ValueError, r"argument 'ksize' must be a positive"),
        ("max_pool", dict(strides=None), ValueError, r"argument 'strides' must be a positive"),
        (
            "avg_pool",
            dict(padding=[[0, 0], [1, 0], [0, 1], [0, 0]]),
            ValueError,
            r"argument 'padding' must be 'SAME' or 'VALID', got \[\[0, 0\], ",
        ),
        ("avg_pool", dict(padding=None), ValueError, r"argument 'padding' must be 'SAME' or"),
        (
            "max_pool",
            dict(padding=[[0, 0], [2, 0], [0, 1], [0, 0]]),
            ValueError,
            r"argument 'padding' \(.*\) must be smaller than the window \('ksize' \[2, 2\]\) on "
            r"every side, got \[2, 0\] at the top and left",
        ),
        (
            "max_pool",
            dict(value=X.long()),
            ValueError,
            r"argument 'value' must have a floating-point dtype, got torch.int64",
        ),
        ("avg_pool", dict(input=X), ValueError, r"cannot specify both 'value' and 'input'"),
        ("max_pool", dict(value=[1.0]), TypeError, r"argument 'value' must be a torch.Tensor"),
        (
            "avg_pool",
            dict(value=torch.ones(3, 4, 5)),
            ValueError,
            r"argument 'value' must be 4-D \(\[batch, \.\.\.\] in NHWC\), got shape \[3, 4, 5\]",
        ),
        ("max_pool", dict(data_format="NC"), ValueError, r"argument 'data_format' must be"),
    ],
)
def test_pool_errors(fn, kwargs, error, message):
    args = dict(value=X, ksize=2, strides=2, padding="SAME")
    args.update(kwargs)
    with pytest.raises(error, match=rf"torchscope\.nn\.{fn}: {message}"):
        getattr(ts.nn, fn)(**args)


@pytest.mark.parametrize("fn", ["max_pool", "avg_pool"])
def test_pool_spellings_and_empty_inputs(fn):
    pool = getattr(ts.nn, fn)
    expected = pool(X, [1, 2, 3, 1], [1, 2, 2, 1], "SAME")
    torch.testing.assert_close(pool(input=X, ksize=[2, 3], strides=2, padding="SAME"), expected)
    nchw = pool(X.permute(0, 3, 1, 2), [1, 1, 2, 3], [1, 1, 2, 2], "SAME", data_format="NCHW")
    torch.testing.assert_close(nchw, expected.permute(0, 3, 1, 2))
    assert pool(torch.zeros(1, 0, 3, 2), 2, 2, "SAME").shape == (1, 0, 2, 2)


# ---------------------------------------------------------------- gradients, compile


@pytest.mark.parametrize(
    "name, fn, shapes",
    [
        (
            "conv2d_transpose",
            lambda v, f: ts.nn.conv2d_transpose(v, f, [1, 5, 4, 2], [2, 3], "SAME"),
            [(1, 3, 2, 3), (3, 2, 2, 3)],
        ),
        (
            "conv2d_transpose NCHW",
            lambda v, f: ts.nn.conv2d_transpose(v, f, [1, 2, 5, 4], 2, "VALID", data_format="NCHW"),
            [(1, 3, 2, 1), (2, 3, 2, 3)],
        ),
        ("max_pool", lambda v: ts.nn.max_pool(v, [3, 2], 2, "SAME"), [(2, 5, 4, 2)]),
        (
            "avg_pool",
            lambda v: ts.nn.avg_pool(v, 3, [2, 1], "SAME", data_format="NCHW"),
            [(1, 2, 5, 4)],
        ),
    ],
    ids=lambda p: p if isinstance(p, str) else "",
)
def test_gradcheck(name, fn, shapes):
    torch.manual_seed(1)
    inputs = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    assert torch.autograd.gradcheck(fn, inputs)


def test_compiled_pools_and_transpose_match_eager():
    torch._dynamo.reset()

    def net(x, f):
        y = ts.nn.conv2d_transpose(x, f, [2, 7, 5, 6], 2, "SAME")
        return ts.nn.avg_pool(ts.nn.max_pool(y, 3, 2, "SAME"), 2, 1, "SAME")

    x, f = torch.randn(2, 4, 3, 5), torch.randn(3, 3, 6, 5)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, f), net(x, f))


# ---------------------------------------------------------------- errors of the others


def _call(fn, *args, **kwargs):
    return lambda: getattr(ts.nn, fn)(*args, **kwargs)


F_DW = torch.randn(3, 3, 5, 2)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            _call("depthwise_conv2d", X, torch.randn(3, 3, 4, 2), 1, "SAME"),
            ValueError,
            r"depthwise_conv2d: argument 'filter' has 4 in_channels \(dim 2 of \[height, width, "
            r"in_channels, channel_multiplier\], shape \[3, 3, 4, 2\]\), which must equal the 5 "
            r"channels of 'input' \(shape \[2, 3, 4, 5\], data_format='NHWC'\)",
        ),
        (
            _call("depthwise_conv2d", X, F_DW, 2, "SAME", rate=2),
            ValueError,
            r"depthwise_conv2d: argument 'strides' must be 1 when 'rate' is above 1, got strides "
            r"\[2, 2\] and rate \[2, 2\]",
        ),
        (
            _call("depthwise_conv2d", X, F_DW, [1, 2, 1, 1], "SAME", dilations=[2, 1]),
            ValueError,
            r"depthwise_conv2d: argument 'strides' must be 1 when 'dilations' is above 1",
        ),
        (
            _call("depthwise_conv2d", X, F_DW, 1, "SAME", rate=2, dilations=2),
            ValueError,
            r"depthwise_conv2d: cannot specify both 'rate' and 'dilations'",
        ),
        (
            _call("depthwise_conv2d", X, torch.randn(5, 3, 5, 2), 1, "VALID"),
            ValueError,
            r"depthwise_conv2d: argument 'filter' \(dilated height 5\) is larger than the height "
            r"of 'input' after padding \(3\) \(input shape \[2, 3, 4, 5\] \(NHWC\), filter shape "
            r"\[5, 3, 5, 2\] \(\[height, width, in_channels, channel_multiplier\]\), "
            r"padding='VALID', rate=\[1, 1\]\)",
        ),
        (
            _call("depthwise_conv2d", X, None, 1, "SAME"),
            TypeError,
            r"depthwise_conv2d: argument 'filter' must be a torch.Tensor, got NoneType",
        ),
        (
            _call("moments", X, [4]),
            ValueError,
            r"moments: argument 'axes' must be an int or a list of ints in \[-4, 4\) \(the "
            r"dimensions of 'x', rank 4\), got \[4\]",
        ),
        (
            _call("moments", X, [1, -3]),
            ValueError,
            r"moments: argument 'axes' names a dimension twice, got \[1, -3\]",
        ),
        (
            _call("moments", X, [0], keep_dims=True, keepdims=True),
            ValueError,
            r"moments: cannot specify both 'keep_dims' and 'keepdims'",
        ),
        (
            _call("moments", X.long(), [0]),
            ValueError,
            r"moments: argument 'x' must have a floating-point dtype, got torch.int64",
        ),
        (_call("moments", [1.0], [0]), TypeError, r"moments: argument 'x' must be a torch"),
        (
            _call("batch_normalization", X, torch.zeros(4), torch.ones(5), None, None, 1e-3),
            ValueError,
            r"batch_normalization: argument 'mean' \(shape \[4\]\) must broadcast against 'x' "
            r"\(shape \[2, 3, 4, 5\]\) without changing its shape",
        ),
        (
            _call("batch_normalization", X, torch.zeros(5), torch.ones(5), [1.0], None, 1e-3),
            TypeError,
            r"batch_normalization: argument 'offset' must be a torch.Tensor, got list",
        ),
        (
            _call("fused_batch_norm", X, torch.ones(5), torch.zeros(5), is_training=False),
            ValueError,
            r"fused_batch_norm: arguments 'mean' and 'variance' must both be 1-D tensors when "
            r"is_training is False or exponential_avg_factor is not 1, got mean=None and "
            r"variance=None",
        ),
        (
            _call(
                "fused_batch_norm",
                X,
                torch.ones(5),
                torch.zeros(5),
                mean=torch.zeros(5),
                exponential_avg_factor=0.5,
            ),
            ValueError,
            r"fused_batch_norm: arguments 'mean' and 'variance' must both be 1-D tensors",
        ),
        (
            _call("fused_batch_norm", X, torch.ones(4), torch.zeros(5)),
            ValueError,
            r"fused_batch_norm: argument 'scale' must be 1-D with 5 elements \(the channels of "
            r"'x', shape \[2, 3, 4, 5\], data_format='NHWC'\), got shape \[4\]",
        ),
        (
            _call("fused_batch_norm", X, torch.ones(5), torch.zeros(5), data_format="NDHWC"),
            ValueError,
            r"fused_batch_norm: argument 'x' must be 5-D for data_format='NDHWC', got shape",
        ),
        (
            _call("fused_batch_norm", X, torch.ones(5), torch.zeros(5), data_format="HWCN"),
            ValueError,
            r"fused_batch_norm: argument 'data_format' must be 'NHWC', 'NCHW' \(4-D 'x'\), "
            r"'NDHWC' or 'NCDHW' \(5-D 'x'\), got 'HWCN'",
        ),
        (
            _call("fused_batch_norm", X, None, torch.zeros(5)),
            TypeError,
            r"fused_batch_norm: argument 'scale' must be a torch.Tensor, got NoneType",
        ),
        (
            _call("dropout", X, rate=1.0),
            ValueError,
            r"dropout: argument 'rate' must be a 0-D tensor or a float in the range \[0, 1\), "
            r"got 1.0",
        ),
        (_call("dropout", X, rate=-0.1), ValueError, r"dropout: argument 'rate' must be a 0-D"),
        (_call("dropout", X, rate="a"), ValueError, r"dropout: argument 'rate' must be a 0-D"),
        (
            _call("dropout", X, keep_prob=0.5, rate=0.5),
            ValueError,
            r"dropout: cannot specify both 'keep_prob' and 'rate'",
        ),
        (_call("dropout", X), ValueError, r"dropout: argument 'rate' \(or 'keep_prob'\) must be"),
        (
            _call("dropout", X, keep_prob="a"),
            ValueError,
            r"dropout: argument 'keep_prob' must be a float or a 0-D tensor, got 'a'",
        ),
        (
            _call("dropout", X.long(), rate=0.5),
            ValueError,
            r"dropout: argument 'x' must have a floating-point dtype \(it is scaled\)",
        ),
        (
            _call("dropout", X, rate=torch.tensor([0.5])),
            ValueError,
            r"dropout: argument 'rate' must be a float or a 0-D tensor, got a tensor of shape "
            r"\[1\]",
        ),
        (
            _call("dropout", X, rate=0.5, noise_shape=[2, 3, 4, 4]),
            ValueError,
            r"dropout: argument 'noise_shape' must be a shape that broadcasts to the shape of 'x' "
            r"\(\[2, 3, 4, 5\]\): .* got \[2, 3, 4, 4\]",
        ),
        (
            _call("dropout", torch.zeros(1, 5), rate=0.5, noise_shape=[3, 5]),
            ValueError,
            r"dropout: argument 'noise_shape' must be a shape that broadcasts",
        ),
        (_call("dropout", None, rate=0.5), TypeError, r"dropout: argument 'x' must be a torch"),
        (_call("l2_loss", [1.0]), TypeError, r"l2_loss: argument 't' must be a torch.Tensor"),
        (
            _call("l2_loss", torch.tensor([1, 2])),
            ValueError,
            r"l2_loss: argument 't' must have a floating-point dtype, got torch.int64",
        ),
        (
            _call(
                "sparse_softmax_cross_entropy_with_logits",
                labels=torch.tensor([1, 7, 2]),
                logits=torch.zeros(3, 5),
            ),
            ValueError,
            r"sparse_softmax_cross_entropy_with_logits: argument 'labels' holds 7, outside the "
            r"valid range \[0, 5\) of class indices \('logits' has 5 classes in its last "
            r"dimension, shape \[3, 5\]\)",
        ),
        (
            _call(
                "sparse_softmax_cross_entropy_with_logits",
                labels=torch.tensor([-1, 0, 2]),
                logits=torch.zeros(3, 5),
            ),
            ValueError,
            r"sparse_softmax_cross_entropy_with_logits: argument 'labels' holds -1, outside",
        ),
        (
            _call(
                "sparse_softmax_cross_entropy_with_logits",
                labels=torch.tensor([1.0, 2.0, 0.0]),
                logits=torch.zeros(3, 5),
            ),
            ValueError,
            r"sparse_softmax_cross_entropy_with_logits: argument 'labels' must be int32 or int64 "
            r"class indices, got torch.float32",
        ),
        (
            _call(
                "sparse_softmax_cross_entropy_with_logits",
                labels=torch.tensor([1, 1]),
                logits=torch.zeros(3, 5),
            ),
            ValueError,
            r"sparse_softmax_cross_entropy_with_logits: argument 'labels' \(shape \[2\]\) must "
            r"have the shape of 'logits' \(shape \[3, 5\], at least 1-D\) without its last "
            r"dimension, \[3\]",
        ),
        (
            _call(
                "sigmoid_cross_entropy_with_logits", labels=torch.zeros(3), logits=torch.zeros(4)
            ),
            ValueError,
            r"sigmoid_cross_entropy_with_logits: argument 'labels' \(shape \[3\], torch.float32\) "
            r"must have the shape and dtype of 'logits' \(shape \[4\], torch.float32\)",
        ),
        (
            _call(
                "sigmoid_cross_entropy_with_logits",
                labels=torch.zeros(3).double(),
                logits=torch.zeros(3),
            ),
            ValueError,
            r"sigmoid_cross_entropy_with_logits: argument 'labels' \(shape \[3\], torch.float64\)",
        ),
        (
            _call("sigmoid_cross_entropy_with_logits", labels=None, logits=torch.zeros(3)),
            TypeError,
            r"sigmoid_cross_entropy_with_logits: argument 'labels' must be a torch.Tensor",
        ),
        (
            _call("softmax_cross_entropy_with_logits_v2", torch.zeros(3, 4), torch.zeros(3, 5)),
            ValueError,
            r"softmax_cross_entropy_with_logits_v2: argument 'labels' \(shape \[3, 4\]\) must "
            r"have the shape of 'logits' \(\[3, 5\]\) or one that broadcasts to it",
        ),
        (
            _call("softmax_cross_entropy_with_logits_v2", torch.zeros(3, 5), torch.zeros(3, 5), 2),
            ValueError,
            r"softmax_cross_entropy_with_logits_v2: argument 'axis' \(2\) must be a dimension of "
            r"'logits' \(shape \[3, 5\], at least 1-D\)",
        ),
        (
            _call(
                "softmax_cross_entropy_with_logits_v2",
                torch.zeros(3, 5),
                torch.zeros(3, 5),
                axis=0,
                dim=0,
            ),
            ValueError,
            r"softmax_cross_entropy_with_logits_v2: cannot specify both 'dim' and 'axis'",
        ),
        (
            _call("softmax_cross_entropy_with_logits_v2", torch.zeros(()), torch.zeros(())),
            ValueError,
            r"softmax_cross_entropy_with_logits_v2: argument 'axis' \(-1\) must be a dimension",
        ),
    ],
)
def test_errors_name_the_argument(call, error, message):
    with pytest.raises(error, match=rf"^torchscope\.nn\.{message}"):
        call()


# ---------------------------------------------------------------- behaviour beyond the goldens


def test_depthwise_conv2d_is_a_grouped_conv2d_in_tensorflows_channel_order():
    x, f = torch.randn(2, 6, 5, 3, dtype=torch.float64), torch.randn(3, 2, 3, 4).double()
    got = ts.nn.depthwise_conv2d(x, f, [1, 2, 2, 1], "SAME")
    for k in range(3):
        for m in range(4):
            one = ts.nn.conv2d(x[..., k : k + 1], f[:, :, k : k + 1, m : m + 1], 2, "SAME")
            torch.testing.assert_close(got[..., k * 4 + m], one[..., 0])
    via_dilations = ts.nn.depthwise_conv2d(x, f, 1, "SAME", dilations=2, data_format="NHWC")
    torch.testing.assert_close(via_dilations, ts.nn.depthwise_conv2d(x, f, 1, "SAME", rate=[2, 2]))


def test_moments_spellings_empty_axes_and_float16():
    x = torch.randn(2, 3, 4)
    mean, variance = ts.nn.moments(x, 1, keepdims=True)
    assert mean.shape == variance.shape == (2, 1, 4)
    torch.testing.assert_close(variance, x.var(1, unbiased=False, keepdim=True))
    mean, variance = ts.nn.moments(x, torch.tensor([0, -1]))
    assert mean.shape == (3,)
    mean, variance = ts.nn.moments(x, [])
    assert torch.equal(mean, x) and not variance.any()
    half_mean, half_variance = ts.nn.moments(x.half(), [0, 1, 2])
    assert half_mean.dtype == half_variance.dtype == torch.float16
    torch.testing.assert_close(half_variance, x.half().float().var(unbiased=False).half())


def test_fused_batch_norm_statistics_carry_no_gradient_and_half_runs_in_float32():
    x = torch.randn(4, 3, 2, 5, requires_grad=True)
    scale, offset = torch.ones(5, requires_grad=True), torch.zeros(5, requires_grad=True)
    y, mean, variance = ts.nn.fused_batch_norm(x, scale, offset)
    assert not mean.requires_grad and not variance.requires_grad and y.requires_grad
    torch.testing.assert_close(variance, x.detach().reshape(-1, 5).var(0))  # Bessel: n - 1
    mean0, var0 = torch.zeros(5, requires_grad=True), torch.ones(5, requires_grad=True)
    _, m, v = ts.nn.fused_batch_norm(x, scale, offset, mean0, var0, is_training=False)
    assert m is mean0 and v is var0  # as given
    y16, m16, v16 = ts.nn.fused_batch_norm(x.detach().half(), scale, offset)
    assert y16.dtype == torch.float16 and m16.dtype == v16.dtype == torch.float32
    torch.testing.assert_close(y16.float(), y.detach(), atol=1e-2, rtol=1e-2)
    _, _, one = ts.nn.fused_batch_norm(torch.randn(1, 1, 1, 5), torch.ones(5), torch.zeros(5))
    assert not one.any()  # one element per channel: 0, not 0 / 0


def test_dropout_keeps_each_element_with_probability_one_minus_rate():
    torch.manual_seed(0)
    x = torch.full((200, 500), 2.0)
    y = ts.nn.dropout(x, rate=0.3)
    kept = y != 0
    assert set(y.unique().tolist()) == {0.0, torch.tensor(2.0 / 0.7).item()}
    assert abs(kept.float().mean().item() - 0.7) < 0.01  # 100 000 draws: sd 0.0015
    assert abs(y.mean().item() - 2.0) < 0.03  # the expectation is kept
    torch.testing.assert_close(
        ts.nn.dropout(x, keep_prob=0.7).ne(0).float().mean(), torch.tensor(0.7), atol=0.01, rtol=0
    )
    rate = torch.tensor(0.5)
    assert set(ts.nn.dropout(x, rate=rate).unique().tolist()) == {0.0, 4.0}
    assert ts.nn.dropout(x, rate=0.0) is x
    (grad,) = torch.autograd.grad(
        ts.nn.dropout(x.requires_grad_(), rate=0.3, seed=7).sum(), x
    )  # kept elements get the scale, dropped ones 0
    assert set(grad.unique().tolist()) == {0.0, torch.tensor(1 / 0.7).item()}


@pytest.mark.parametrize(
    "noise_shape", [[4, 1, 1, 3], [None, 1, 1, None], [1, 3], torch.tensor([4, 1, 1, 3])]
)
def test_dropout_noise_shape_shares_one_draw_along_broadcast_dimensions(noise_shape):
    torch.manual_seed(1)
    y = ts.nn.dropout(torch.ones(4, 6, 5, 3), rate=0.5, noise_shape=noise_shape)
    dropped = y == 0
    # each feature map is dropped or kept whole
    assert torch.equal(dropped.all(dim=(1, 2)), dropped.any(dim=(1, 2)))
    if noise_shape != [1, 3]:
        assert not torch.equal(dropped[0], dropped[1]) or not torch.equal(dropped[1], dropped[2])


def test_dropout_zeroes_dropped_nans_as_tensorflow_where_does():
    torch.manual_seed(2)
    y = ts.nn.dropout(torch.full((1000,), float("nan")), rate=0.5)
    assert (y == 0).any() and y.isnan().sum() == (y != 0).sum()


def test_softmax_cross_entropy_gradients_flow_into_labels():
    logits = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.softmax(torch.randn(4, 6, dtype=torch.float64), -1).requires_grad_()
    loss = ts.nn.softmax_cross_entropy_with_logits_v2(labels, logits)
    gl, gz = torch.autograd.grad(loss.sum(), [logits, labels])
    torch.testing.assert_close(gl, torch.softmax(logits, -1) - labels)
    torch.testing.assert_close(gz, -torch.log_softmax(logits, -1))
    assert torch.autograd.gradcheck(
        lambda z, x: ts.nn.softmax_cross_entropy_with_logits_v2(z, x, dim=-1), [labels, logits]
    )  # for labels that sum to 1 the loss's derivative is TensorFlow's gradient


def test_sparse_softmax_cross_entropy_out_of_range_is_nan_when_not_checked():
    logits = torch.randn(3, 5)

    def loss(labels, logits):
        return ts.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    out = compiled(torch.tensor([1, 7, 2]), logits)
    assert out[1].isnan() and not out[[0, 2]].isnan().any()
    torch.testing.assert_close(out[[0, 2]], loss(torch.tensor([1, 2]), logits[[0, 2]]))


@pytest.mark.parametrize(
    "fn, shapes",
    [
        (lambda x, f: ts.nn.depthwise_conv2d(x, f, 2, "SAME"), [(1, 5, 4, 2), (3, 2, 2, 2)]),
        (
            lambda x, f: ts.nn.depthwise_conv2d(x, f, 1, "VALID", rate=2, data_format="NCHW"),
            [(1, 2, 6, 5), (2, 2, 2, 1)],
        ),
        (lambda x: ts.nn.moments(x, [0, 2], keep_dims=True), [(3, 2, 4)]),
        (
            lambda x, m, v, o, s: ts.nn.batch_normalization(x, m, v, o, s, 1e-3),
            [(2, 3, 4), (4,), (4,), (4,), (4,)],
        ),
        (
            lambda x, s, o: ts.nn.fused_batch_norm(x, s, o, data_format="NCHW")[0],
            [(3, 2, 2, 3), (2,), (2,)],
        ),
        (
            lambda x, s, o: ts.nn.fused_batch_norm(
                x, s, o, torch.zeros(2).double(), torch.ones(2).double(), is_training=False
            )[0],
            [(3, 2, 2, 2), (2,), (2,)],
        ),
        (lambda t: ts.nn.l2_loss(t), [(3, 4)]),
        (lambda z, x: ts.nn.sigmoid_cross_entropy_with_logits(z, x), [(3, 4), (3, 4)]),
        (
            lambda x: ts.nn.sparse_softmax_cross_entropy_with_logits(torch.tensor([2, 0, 1]), x),
            [(3, 4)],
        ),
    ],
)
def test_gradcheck_more(fn, shapes):
    torch.manual_seed(3)
    inputs = [torch.rand(s, dtype=torch.float64).add(0.5).requires_grad_() for s in shapes]
    assert torch.autograd.gradcheck(fn, inputs)


def test_compiled_norm_dropout_and_losses_match_eager():
    torch._dynamo.reset()

    def step(x, scale, offset, labels):
        y, mean, variance = ts.nn.fused_batch_norm(x, scale, offset)
        y = ts.nn.dropout(ts.nn.relu(y), rate=0.0)
        mean2, variance2 = ts.nn.moments(y, [1, 2])
        zero = torch.zeros(())
        logits = ts.nn.batch_normalization(mean2, zero, variance2.mean(0), None, None, 1e-3)
        loss = ts.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return loss.mean() + ts.nn.l2_loss(scale), mean, variance

    args = (torch.randn(4, 5, 3, 6), torch.rand(6), torch.randn(6), torch.tensor([0, 5, 2, 1]))
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    for got, expected in zip(compiled(*args), step(*args), strict=True):
        torch.testing.assert_close(got, expected)
