"""Edge cases of the compiled CPU kernels of torchscope::conv2d_bias_relu (csrc/cpu).

Each test runs the op itself (and its _with_mask / _backward halves) on every CPU
path of the forward and compares with the eager composition relu(conv2d(...)) or a
float64 reference: strided biases, relu-mask tails (output sizes that are not a
multiple of 8), layouts where contiguous and channels_last strides coincide, empty
batches, every subset of the requested gradients, and the bias gradient's accuracy
and determinism in low precision.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import torchscope as ts
from torchscope.ops import _knobs

pytestmark = pytest.mark.skipif(
    not ts.ops.native_available(), reason="compiled extension torchscope._C not built"
)

OPS = torch.ops.torchscope if ts.ops.native_available() else None
ARGS = ([1, 1], [1, 1], [1, 1], 1)  # stride, padding, dilation, groups
TOLERANCES = {
    torch.float32: dict(atol=1e-4, rtol=1e-4),
    torch.float64: dict(atol=1e-10, rtol=1e-10),
    torch.bfloat16: dict(atol=5e-2, rtol=2e-2),
    torch.float16: dict(atol=1e-2, rtol=1e-2),
}


@pytest.fixture(params=["onednn", "small", "generic"])
def cpu_path(request):
    """Each CPU path of the no-grad forward (as in test_ops.py): oneDNN's post-op
    convolution, ATen's convolution and a relu pass, the generic epilogue."""
    with _knobs.cpu_path(
        onednn=request.param != "generic",
        post_op_min_elements=0 if request.param == "onednn" else 2**62,
    ):
        yield request.param


def reference(x, w, b, stride=1, padding=1, dilation=1, groups=1):
    return F.relu(F.conv2d(x, w, b, stride, padding, dilation, groups))


def randn(*shape, dtype=torch.float32, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def relu_mask(output):
    """The relu mask of a dense ``output`` (csrc/epilogue.h): bit i % 8 of byte i // 8
    is set when element i, in memory order, is > 0 or NaN."""
    flat = ~(output.as_strided((output.numel(),), (1,)) <= 0)
    padded = torch.zeros((flat.numel() + 7) // 8 * 8, dtype=torch.uint8)
    padded[: flat.numel()] = flat
    return (padded.view(-1, 8).int() << torch.arange(8)).sum(1).to(torch.uint8)


def skip_without_cpu_conv(dtype):
    try:
        F.conv2d(torch.ones(1, 1, 2, 2, dtype=dtype), torch.ones(1, 1, 1, 1, dtype=dtype))
    except RuntimeError as e:
        pytest.skip(f"torch has no {dtype} conv2d on CPU: {e}")


# ------------------------------------------------------------ strided bias


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("kind", ["slice", "expanded"])
def test_strided_bias_matches_eager(kind, dtype, cpu_path):
    """oneDNN's post-op path read the bias as dense: b[::2] and an expanded scalar
    gave wrong outputs (float32)."""
    x = randn(2, 6, 9, 9, dtype=dtype, seed=1)
    w = randn(8, 3, 3, 3, dtype=dtype, seed=2)
    if kind == "slice":
        b = randn(16, dtype=dtype, seed=3)[::2]
    else:
        b = randn(1, dtype=dtype, seed=3).expand(8)
    assert not b.is_contiguous()
    args = ([1, 1], [1, 1], [1, 1], 2)
    expected = reference(x, w, b, 1, 1, 1, 2)
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(OPS.conv2d_bias_relu(x, w, b, *args), expected, **tol)
    out, mask = OPS.conv2d_bias_relu_with_mask(x, w, b, *args)
    torch.testing.assert_close(out, expected, **tol)
    assert torch.equal(mask, relu_mask(out))


# ---------------------------------------------- mask tails, ambiguous strides

# (N, C_in, H, W, C_out, k): output element counts that are not a multiple of 8,
# 32 or 64; output C == 1 and H == W == 1, where contiguous and channels_last
# strides describe the same memory.
SHAPES = [
    (1, 1, 1, 1, 1, 1),  # one element
    (1, 2, 3, 3, 3, 3),  # 27 elements
    (3, 1, 5, 7, 1, 3),  # C_in == C_out == 1
    (2, 3, 3, 3, 5, 3),  # H_out == W_out == 1
    (5, 4, 1, 1, 7, 1),  # 1x1 spatial everywhere
    (2, 3, 37, 29, 3, 3),  # 6438 elements, several tasks per dtype
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_odd_sizes_and_ambiguous_layouts(shape, layout, dtype, cpu_path):
    if dtype == torch.float16:
        skip_without_cpu_conv(dtype)
    n, c_in, h, w_, c_out, k = shape
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = randn(n, c_in, h, w_, dtype=dtype, seed=10).to(memory_format=fmt)
    w = randn(c_out, c_in, k, k, dtype=dtype, seed=11, scale=0.5).to(memory_format=fmt)
    b = randn(c_out, dtype=dtype, seed=12)
    pad = (k - 1) // 2 if h > 1 else 0
    args = ([1, 1], [pad, pad], [1, 1], 1)
    tol = TOLERANCES[dtype]
    expected = reference(x, w, b, 1, pad)
    out = OPS.conv2d_bias_relu(x, w, b, *args)
    torch.testing.assert_close(out, expected, **tol)
    masked_out, mask = OPS.conv2d_bias_relu_with_mask(x, w, b, *args)
    torch.testing.assert_close(masked_out, expected, **tol)
    assert mask.shape == ((out.numel() + 7) // 8,)
    assert torch.equal(mask, relu_mask(masked_out))
    # The strides are the fake kernel's (torch.compile and export rely on them).
    with torch._subclasses.fake_tensor.FakeTensorMode() as mode:
        fake = OPS.conv2d_bias_relu(
            mode.from_tensor(x), mode.from_tensor(w), mode.from_tensor(b), *args
        )
    assert out.stride() == masked_out.stride() == fake.stride()

    # The backward reads the mask in the same memory order the forward wrote it.
    grad = randn(*out.shape, dtype=dtype, seed=13)
    gi, gw, gb = OPS.conv2d_bias_relu_backward(grad, mask, x, w, *args, [True, True, True])
    masked = torch.where(masked_out > 0, grad, torch.zeros_like(grad))
    want_gi, want_gw, _ = torch.ops.aten.convolution_backward(
        masked, x, w, None, *args[:3], False, [0, 0], 1, [True, True, False]
    )
    torch.testing.assert_close(gi, want_gi, **tol)
    torch.testing.assert_close(gw, want_gw, **tol)
    want_gb = masked.double().sum((0, 2, 3)).to(dtype)
    torch.testing.assert_close(gb, want_gb, **tol)


# -------------------------------------------------------------- empty batch


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_empty_batch(layout, dtype, cpu_path):
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = randn(0, 3, 6, 5, dtype=dtype).to(memory_format=fmt).requires_grad_()
    w = randn(4, 3, 3, 3, dtype=dtype, seed=1).to(memory_format=fmt).requires_grad_()
    b = randn(4, dtype=dtype, seed=2).requires_grad_()
    out = ts.ops.conv2d_bias_relu(x, w, b, padding=1)
    assert out.shape == (0, 4, 6, 5)
    _, mask = OPS.conv2d_bias_relu_with_mask(x.detach(), w.detach(), b.detach(), *ARGS)
    assert mask.shape == (0,)
    gx, gw, gb = torch.autograd.grad(out.sum(), (x, w, b))
    assert gx.shape == x.shape
    assert torch.equal(gw, torch.zeros_like(w))
    assert torch.equal(gb, torch.zeros_like(b))


# ----------------------------------------------------- requested gradients


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("output_mask", list(itertools.product([False, True], repeat=3)), ids=str)
def test_every_subset_of_gradients(output_mask, layout):
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = randn(2, 3, 7, 5, dtype=torch.float64, seed=20).to(memory_format=fmt)
    w = randn(6, 3, 3, 3, dtype=torch.float64, seed=21).to(memory_format=fmt)
    b = randn(6, dtype=torch.float64, seed=22)
    out, mask = OPS.conv2d_bias_relu_with_mask(x, w, b, *ARGS)
    grad = randn(*out.shape, dtype=torch.float64, seed=23)
    results = OPS.conv2d_bias_relu_backward(grad, mask, x, w, *ARGS, list(output_mask))
    assert [r is not None for r in results] == list(output_mask)
    masked = grad * (out > 0)
    want = torch.ops.aten.convolution_backward(
        masked, x, w, [6], *ARGS[:3], False, [0, 0], 1, [True, True, True]
    )
    for got, expected in zip(results, want, strict=True):
        if got is not None:
            torch.testing.assert_close(got, expected)


# ---------------------------------------------------- bias gradient precision


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_bias_gradient_accumulates_in_float_and_is_deterministic(layout, dtype):
    """65k elements per channel: a sum kept in bfloat16/float16 would be off by far
    more than one rounding of the result; the number of threads changes nothing."""
    if dtype == torch.float16:
        skip_without_cpu_conv(dtype)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = randn(16, 4, 64, 64, dtype=dtype, seed=30).to(memory_format=fmt)
    w = randn(12, 4, 3, 3, dtype=dtype, seed=31, scale=0.3).to(memory_format=fmt)
    b = randn(12, dtype=dtype, seed=32)
    out, mask = OPS.conv2d_bias_relu_with_mask(x, w, b, *ARGS)
    # A positive gradient, so that the sums grow (and a low-precision sum stalls),
    # small enough that they stay under float16's largest value (65504).
    grad = ((randn(*out.shape, dtype=torch.float64, seed=33).abs() + 0.5) / 4).to(dtype)
    threads = torch.get_num_threads()
    try:
        sums = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            sums.append(
                OPS.conv2d_bias_relu_backward(grad, mask, x, w, *ARGS, [False, False, True])[2]
            )
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(s, sums[0]) for s in sums[1:])
    want = torch.where(out > 0, grad, torch.zeros_like(grad)).double().sum((0, 2, 3))
    # One rounding to dtype of the exact sum, plus float accumulation error.
    rtol = {torch.bfloat16: 2**-8, torch.float16: 2**-11, torch.float32: 1e-5}[dtype]
    torch.testing.assert_close(sums[0].double(), want, rtol=rtol, atol=0)
    assert sums[0].dtype == dtype


# ------------------------------------------------------------ index widths


def test_mask_size_is_computed_in_64_bits():
    """The backward's expected mask size for an output of 2**33 elements (expanded
    tensors: no memory): 2**30 bytes, not a wrapped 32-bit count."""
    x = torch.zeros(1).expand(2**12, 1, 2**10, 2**10)
    w = torch.zeros(1).expand(2, 1, 1, 1)
    grad = torch.zeros(1).expand(2**12, 2, 2**10, 2**10)
    mask = torch.zeros(8, dtype=torch.uint8)
    with pytest.raises(RuntimeError, match=r"\(1-D, torch.uint8, 1073741824 bytes\)"):
        OPS.conv2d_bias_relu_backward(
            grad, mask, x, w, [1, 1], [0, 0], [1, 1], 1, [True, True, True]
        )
