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


def check(fn, g: dict[str, torch.Tensor], differentiable: list[str], outputs=("y",)):
    """Runs ``fn(**inputs)`` and compares its outputs and the gradients of
    ``sum(first output * upstream)`` with TensorFlow's."""
    inputs = {k: g[k].clone().requires_grad_(k in differentiable) for k in differentiable}
    result = fn(**inputs)
    result = result if isinstance(result, tuple) else (result,)
    for name, r in zip(outputs, result, strict=False):
        assert_matches(r.detach(), g[name], name)
    y = result[0]
    grads = torch.autograd.grad(y, [inputs[k] for k in differentiable], upstream(y.shape, y.dtype))
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


# ---------------------------------------------------------------- pooling


@pytest.mark.parametrize("case", cases("pool"))
def test_pool_matches_tensorflow(case):
    g = golden("pool", case)
    op = getattr(ts.nn, case["op"])

    def fn(value):
        return op(value, case["ksize"], case["strides"], case["padding"], case["data_format"])

    check(fn, g, ["value"])


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
