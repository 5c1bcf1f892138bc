"""NaN and infinities: ts.ops.conv2d_bias_relu and ts.nn put them where eager
``relu(conv2d(x, w, b))`` does, on every path: oneDNN's post-op convolution, ATen's
convolution plus the relu pass, the generic epilogue, the pure-PyTorch fallback,
CUDA; training (the mask forward) and no-grad; NCHW and channels_last; every dtype
the kernels take. The gradients' NaN positions follow eager's too."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import torchscope as ts
from torchscope import _native
from torchscope.ops import _knobs

INF, NAN = math.inf, math.nan

PATHS = ["onednn", "small", "generic", "fallback", "cuda"]


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """The path every call of the test takes (see tests/test_ops.py's cpu_path)."""
    name = request.param
    if name == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("CUDA not available (no GPU on this machine)")
        if not ts.ops.native_available():
            pytest.skip("compiled extension torchscope._C not built")
        yield "cuda"
        return
    if name == "fallback":
        monkeypatch.setattr(_native, "LOADED", False)
        monkeypatch.setattr(_native, "warn_fallback_once", lambda: None)
        yield "cpu"
        return
    if not ts.ops.native_available():
        pytest.skip("compiled extension torchscope._C not built")
    with _knobs.cpu_path(
        onednn=name != "generic", post_op_min_elements=0 if name == "onednn" else 2**62
    ):
        yield "cpu"


def assert_same_nonfinite(out: torch.Tensor, ref: torch.Tensor, what: str = "output") -> None:
    assert out.shape == ref.shape
    for name, mask in (
        ("NaN", torch.isnan),
        ("+inf", lambda t: t == INF),
        ("-inf", lambda t: t == -INF),
    ):
        got, want = mask(out), mask(ref)
        assert torch.equal(got, want), (
            f"{what}: {name} at {got.nonzero().tolist()}, eager has it at {want.nonzero().tolist()}"
        )
    finite = ref.isfinite()
    tol = {"atol": 2e-2, "rtol": 2e-2} if ref.dtype in (torch.bfloat16, torch.float16) else {}
    torch.testing.assert_close(out[finite], ref[finite], **tol)


def case(kind: str, dtype: torch.dtype, device: str):
    """input, weight, bias with one kind of non-finite value placed in them."""
    g = torch.Generator().manual_seed(hash(kind) % 2**31)
    x = torch.randn(2, 3, 6, 7, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    if kind == "nan input":
        x[0, 1, 2, 3] = NAN
    elif kind == "+inf input":
        x[1, 0, 4, 1] = INF  # +inf and -inf pre-activations, by the weights' signs
    elif kind == "-inf input":
        x[0, 2, 0, 0] = -INF
    elif kind == "inf and -inf input":
        x[0, 0, 2, 2], x[0, 0, 2, 3] = INF, -INF  # inf - inf: NaN where both are in view
    elif kind == "inf times zero weight":
        x[1, 1, 3, 3] = INF
        w[2, 1] = 0.0  # inf * 0: NaN in channel 2
    elif kind == "nan weight":
        w[1, 0, 1, 1] = NAN
    elif kind == "inf weight":
        w[3, 2, 0, 2] = INF
    elif kind == "nan bias":
        b[0] = NAN
    elif kind == "+inf bias":
        b[1] = INF
    elif kind == "-inf bias":
        b[2] = -INF  # relu(-inf) = 0
    elif kind == "overflow":
        # Finite everywhere, but the sums overflow: +inf, -inf and inf - inf.
        big = torch.finfo(dtype).max / 4
        x[0, :, 1:4, 1:4] = big
        x[1, 0, 2, 2] = -big
        w[:2] = 8.0
        w[2, 0] = -8.0
        w[2, 1] = 8.0
    return (t.to(dtype).to(device) for t in (x, w, b))


KINDS = [
    "nan input",
    "+inf input",
    "-inf input",
    "inf and -inf input",
    "inf times zero weight",
    "nan weight",
    "inf weight",
    "nan bias",
    "+inf bias",
    "-inf bias",
    "overflow",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_no_grad_forward_matches_eager(path, kind, layout, dtype):
    x, w, b = case(kind, dtype, path)
    x, w = x.to(memory_format=layout), w.to(memory_format=layout)
    with torch.no_grad():
        out = ts.ops.conv2d_bias_relu(x, w, b, padding=1)
        ref = F.relu(F.conv2d(x, w, b, padding=1))
    assert_same_nonfinite(out, ref)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_forward_and_gradients_match_eager(path, kind, layout, dtype):
    tensors = [t.to(memory_format=layout) if t.dim() == 4 else t for t in case(kind, dtype, path)]
    ours = [t.clone().requires_grad_() for t in tensors]
    theirs = [t.clone().requires_grad_() for t in tensors]
    out = ts.ops.conv2d_bias_relu(*ours, padding=1)
    ref = F.relu(F.conv2d(*theirs, padding=1))
    assert_same_nonfinite(out, ref)
    grad = torch.ones_like(ref)
    out.backward(grad)
    ref.backward(grad)
    for name, a, e in zip(("input", "weight", "bias"), ours, theirs, strict=True):
        assert a.grad is not None and e.grad is not None
        assert_same_nonfinite(a.grad, e.grad, f"grad of {name}")


@pytest.mark.parametrize("size", [5, 64])  # under and over the post-op's 32768 elements
def test_default_split_keeps_nan_on_both_sides(size):
    """With the library's own thresholds, not the test's: a NaN in the input of a large
    no-grad call (oneDNN's post-op size) comes out as NaN, as eager's does."""
    x = torch.randn(1, 3, size, size)
    x[0, 0, 1, 1] = NAN
    w, b = torch.randn(8, 3, 1, 1), torch.randn(8)
    with torch.no_grad():
        out = ts.ops.conv2d_bias_relu(x, w, b)
    assert out[0, :, 1, 1].isnan().all()
    assert_same_nonfinite(out, F.relu(F.conv2d(x, w, b)))


@pytest.mark.parametrize("kind", ["nan input", "+inf input", "nan weight", "-inf bias"])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_nn_conv2d_bias_relu_matches_its_composition(path, kind, data_format, padding):
    """ts.nn.conv2d_bias_relu against ts.nn's relu(bias_add(conv2d(...))), TensorFlow's
    composition, with the same non-finite values."""
    x, w, b = case(kind, torch.float32, path)
    x = x.permute(0, 2, 3, 1) if data_format == "NHWC" else x
    w = w.permute(2, 3, 1, 0)  # HWIO
    with torch.no_grad():
        out = ts.nn.conv2d_bias_relu(x, w, b, 2, padding, data_format)
        ref = ts.nn.relu(
            ts.nn.bias_add(ts.nn.conv2d(x, w, 2, padding, data_format), b, data_format)
        )
    assert_same_nonfinite(out, ref)


# ------------------------------------------------------------ non-tensor arguments

X, W, B = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3), torch.randn(3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((None, W, B), "argument 'input' must be a torch.Tensor, got NoneType"),
        (([[1.0]], W, B), "argument 'input' must be a torch.Tensor, got list"),
        ((X, None, B), "argument 'weight' must be a torch.Tensor, got NoneType"),
        ((X, [[1.0]], B), "argument 'weight' must be a torch.Tensor, got list"),
        ((X, W, [1.0, 2.0, 3.0]), "argument 'bias' must be a torch.Tensor or None, got list"),
        ((X, W, 3), "argument 'bias' must be a torch.Tensor or None, got int"),
        ((X, W, B, 1, 0, 1, "1"), "argument 'groups' must be an int, got str"),
        ((X, W, B, 1, 0, 1, True), "argument 'groups' must be an int, got bool"),
        ((X, W, B, 1, 0, 1, 1.0), "argument 'groups' must be an int, got float"),
    ],
)
def test_op_names_a_non_tensor_argument(args, message):
    with pytest.raises(TypeError, match=f"torchscope::conv2d_bias_relu: {message}"):
        ts.ops.conv2d_bias_relu(*args)


def test_op_takes_parameters_and_numpy_integer_groups():
    np = pytest.importorskip("numpy")
    w = torch.nn.Parameter(W.clone())
    b = torch.nn.Parameter(B.clone())
    out = ts.ops.conv2d_bias_relu(X, w, b, 1, 1, 1, np.int64(1))
    torch.testing.assert_close(out, F.relu(F.conv2d(X, W, B, 1, 1)))


XN, WN = torch.randn(1, 5, 5, 2), torch.randn(3, 3, 2, 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ts.nn.conv2d(None, WN, 1, "SAME"), "conv2d: argument 'input' .* got NoneType"),
        (lambda: ts.nn.conv2d(XN, [[1.0]], 1, "SAME"), "conv2d: argument 'filter' .* got list"),
        (
            lambda: ts.nn.conv2d_bias_relu(XN, None, torch.zeros(4), 1, "SAME"),
            "conv2d_bias_relu: argument 'filter' must be a torch.Tensor, got NoneType",
        ),
        (
            lambda: ts.nn.conv2d_bias_relu(XN, WN, [0.0] * 4, 1, "SAME"),
            "conv2d_bias_relu: argument 'bias' must be a torch.Tensor or None, got list",
        ),
        (
            lambda: ts.nn.bias_add(None, torch.zeros(4)),
            "bias_add: argument 'value' must be a torch.Tensor, got NoneType",
        ),
        (
            lambda: ts.nn.bias_add(XN, None),
            "bias_add: argument 'bias' must be a torch.Tensor, got NoneType",
        ),
        (lambda: ts.nn.relu([1.0, -1.0]), "relu: argument 'features' must be a torch.Tensor"),
    ],
)
def test_nn_names_a_non_tensor_argument(call, message):
    with pytest.raises(TypeError, match=f"torchscope.nn.{message}"):
        call()


def test_nn_conv2d_bias_relu_takes_no_bias():
    out = ts.nn.conv2d_bias_relu(XN, WN, None, 1, "SAME")
    torch.testing.assert_close(out, ts.nn.relu(ts.nn.conv2d(XN, WN, 1, "SAME")))
