"""Tests of torchscope.nn: TensorFlow-signature conv2d, bias_add, relu, conv2d_bias_relu.

TensorFlow's numbers are pinned by small cases computed by hand (the "SAME"
split puts the odd padding row/column at the bottom/right).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import torchscope as ts


def nhwc(rows):
    """A 1 x H x W x 1 tensor from a nested list of rows."""
    return torch.tensor(rows, dtype=torch.float32)[None, :, :, None]


def hwio_ones(h, w):
    return torch.ones(h, w, 1, 1)


# -------------------------------------------------------- SAME, by hand


def test_same_stride_2_pads_the_extra_at_the_bottom_right():
    x = nhwc([[4 * r + c + 1 for c in range(4)] for r in range(4)])  # 1..16
    out = ts.nn.conv2d(x, hwio_ones(3, 3), strides=[1, 2, 2, 1], padding="SAME")
    # Output 2x2; total padding 1 per dimension, all of it after: the windows
    # are rows/cols {0,1,2} and {2,3,pad}.
    assert out[0, :, :, 0].tolist() == [[54.0, 45.0], [72.0, 54.0]]


def test_same_stride_1_even_kernel():
    x = nhwc([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    out = ts.nn.conv2d(x, hwio_ones(2, 2), strides=1, padding="SAME")[0, :, :, 0]
    assert out.tolist() == [[12.0, 16.0, 9.0], [24.0, 28.0, 15.0], [15.0, 17.0, 9.0]]


def test_same_one_row_stride_2():
    x = nhwc([[1, 2, 3, 4, 5]])
    out = ts.nn.conv2d(x, hwio_ones(1, 2), strides=2, padding="SAME")
    assert out.flatten().tolist() == [3.0, 7.0, 5.0]


def test_same_with_dilation():
    x = nhwc([[1, 2, 3, 4, 5]])
    out = ts.nn.conv2d(x, hwio_ones(1, 2), strides=1, padding="SAME", dilations=[1, 1, 2, 1])
    assert out.flatten().tolist() == [2.0, 4.0, 6.0, 8.0, 4.0]  # x[j-1] + x[j+1]


def test_same_stride_larger_than_kernel_needs_no_padding():
    x = nhwc([[1, 2, 3, 4, 5, 6]])
    out = ts.nn.conv2d(x, hwio_ones(1, 1), strides=[1, 3], padding="SAME")
    assert out.flatten().tolist() == [1.0, 4.0]


def test_valid_and_explicit_padding():
    x = nhwc([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    valid = ts.nn.conv2d(x, hwio_ones(2, 2), 1, "VALID")[0, :, :, 0]
    assert valid.tolist() == [[12.0, 16.0], [24.0, 28.0]]
    explicit = ts.nn.conv2d(x, hwio_ones(2, 2), 1, [[0, 0], [1, 0], [0, 1], [0, 0]])[0, :, :, 0]
    assert explicit.tolist() == [[3.0, 5.0, 3.0], [12.0, 16.0, 9.0], [24.0, 28.0, 15.0]]


def test_conv2d_bias_relu_same_by_hand():
    x = nhwc([[1, -2, 3, -4, 5]])
    out = ts.nn.conv2d_bias_relu(x, hwio_ones(1, 2), torch.tensor([0.5]), 2, "SAME")
    assert out.flatten().tolist() == [0.0, 0.0, 5.5]  # relu([-1, -1, 5] + 0.5)


# -------------------------------------------- against PyTorch, randomized


def to_oihw(f):
    return f.permute(3, 2, 0, 1)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize(
    "strides, dilations, padding",
    [
        (1, None, "SAME"),
        ([2, 2], 1, "SAME"),
        ([1, 1, 2, 1], None, "VALID"),
        (1, 2, "SAME"),
        (3, 1, "SAME"),
    ],
)
@pytest.mark.parametrize("filter_in", [4, 2], ids=["dense", "grouped"])
def test_matches_padded_torch_conv(data_format, strides, dilations, padding, filter_in):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)  # NCHW
    f = torch.randn(3, 2, filter_in, 6, dtype=torch.float64)  # HWIO
    b = torch.randn(6, dtype=torch.float64)
    tf_x = x.permute(0, 2, 3, 1) if data_format == "NHWC" else x
    s = (
        [strides] * 2
        if isinstance(strides, int)
        else strides[1:3]
        if len(strides) == 4
        else strides
    )
    if data_format == "NCHW" and isinstance(strides, list) and len(strides) == 4:
        strides = [strides[0], strides[3], strides[1], strides[2]]
    out = ts.nn.conv2d(tf_x, f, strides, padding, data_format, dilations)
    fused = ts.nn.conv2d_bias_relu(tf_x, f, b, strides, padding, data_format, dilations)
    unfused = ts.nn.relu(ts.nn.bias_add(out, b, data_format))
    torch.testing.assert_close(fused, unfused)
    if data_format == "NHWC":
        out = out.permute(0, 3, 1, 2)

    # Independent reference: TensorFlow's padding formula, F.pad, unpadded conv.
    d = [dilations or 1] * 2 if not isinstance(dilations, list) else dilations
    pads = []
    for n, k, st, di in zip(x.shape[2:], f.shape[:2], s, d, strict=True):
        if padding == "VALID":
            pads.append((0, 0))
            continue
        total = max((-(-n // st) - 1) * st + (k - 1) * di + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    padded = F.pad(x, [pads[1][0], pads[1][1], pads[0][0], pads[0][1]])
    expected = F.conv2d(padded, to_oihw(f), None, s, 0, d, groups=4 // filter_in)
    torch.testing.assert_close(out, expected)


def test_nhwc_and_nchw_agree_and_keep_the_layout():
    torch.manual_seed(1)
    x = torch.randn(2, 7, 7, 3)
    f = torch.randn(3, 3, 3, 5)
    b = torch.randn(5)
    nhwc_out = ts.nn.conv2d_bias_relu(x, f, b, 2, "SAME")
    nchw_out = ts.nn.conv2d_bias_relu(x.permute(0, 3, 1, 2), f, b, 2, "SAME", data_format="NCHW")
    assert nhwc_out.shape == (2, 4, 4, 5)
    assert nhwc_out.is_contiguous()  # channels_last underneath: NHWC-contiguous
    torch.testing.assert_close(nhwc_out, nchw_out.permute(0, 2, 3, 1))


def test_conv2d_bias_relu_gradients_match_composition():
    torch.manual_seed(2)
    x = torch.randn(1, 6, 5, 2, dtype=torch.float64, requires_grad=True)
    f = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, f, b: ts.nn.conv2d_bias_relu(x, f, b, [1, 2, 1, 1], "SAME"), (x, f, b)
    )


def test_compiles_without_graph_breaks():
    x = torch.randn(1, 6, 6, 3)
    f = torch.randn(3, 3, 3, 4)
    b = torch.randn(4)

    def fn(x, f, b):
        return ts.nn.conv2d_bias_relu(x, f, b, 2, "SAME")

    assert torch._dynamo.explain(fn)(x, f, b).graph_break_count == 0
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, f, b), fn(x, f, b))


# ----------------------------------------------------------- bias_add, relu


def test_bias_add():
    value = torch.zeros(2, 3, 4, 5)
    out = ts.nn.bias_add(value, torch.arange(5.0))
    assert out[1, 2, 3].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    out = ts.nn.bias_add(value, torch.arange(3.0), data_format="NCHW")
    assert out[1, :, 3, 4].tolist() == [0.0, 1.0, 2.0]
    assert ts.nn.bias_add(torch.zeros(2, 3), torch.ones(3)).sum() == 6
    assert ts.nn.bias_add(torch.zeros(1, 2, 3, 3, 3), torch.ones(2), "NC...").sum() == 54


def test_relu():
    assert ts.nn.relu(torch.tensor([-1.0, 0.0, 3.0])).tolist() == [0.0, 0.0, 3.0]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(data_format="NCWH"), r"argument 'data_format' must be 'NHWC' or 'NCHW', got 'NCWH'"),
        (dict(input=torch.ones(4, 4, 1)), r"argument 'input' must be 4-D .* got shape \[4, 4, 1\]"),
        (
            dict(filter=torch.ones(3, 3, 1)),
            r"argument 'filter' must be 4-D \(\[height, width, in_channels, out_channels\]\)",
        ),
        (
            dict(strides=[2, 2, 2, 1]),
            r"argument 'strides' must be 1 in the batch and channel dimensions",
        ),
        (
            dict(strides=[1, 2, 3]),
            r"argument 'strides' must be a positive int or a list of 1, 2 or 4",
        ),
        (dict(strides=0), r"argument 'strides' must be a positive int"),
        (dict(dilations=[1, 0]), r"argument 'dilations' must be a positive int"),
        (
            dict(padding="FULL"),
            r"argument 'padding' must be 'SAME', 'VALID' or 4 \[before, after\] pairs",
        ),
        (
            dict(padding=[[1, 1], [0, 0], [0, 0], [0, 0]]),
            r"argument 'padding' must be .* \[0, 0\] for the batch",
        ),
        (
            dict(filter=torch.ones(3, 3, 2, 4)),
            r"argument 'filter' has 2 input channels \(dim 2\), which must divide the 3 "
            r"channels of 'input'",
        ),
    ],
)
@pytest.mark.parametrize("fn", ["conv2d", "conv2d_bias_relu"])
def test_conv_errors_name_the_argument(fn, kwargs, message):
    args = dict(
        input=torch.ones(1, 5, 5, 3), filter=torch.ones(3, 3, 3, 4), strides=1, padding="SAME"
    )
    args.update(kwargs)
    if fn == "conv2d_bias_relu":
        args["bias"] = torch.ones(4)
    with pytest.raises(ValueError, match=rf"torchscope\.nn\.{fn}: {message}"):
        getattr(ts.nn, fn)(**args)


def test_fused_bias_length_error_names_bias():
    with pytest.raises(RuntimeError, match=r"argument 'bias' to be a 1-D tensor of 4 elements"):
        ts.nn.conv2d_bias_relu(
            torch.ones(1, 5, 5, 3), torch.ones(3, 3, 3, 4), torch.ones(3), 1, "SAME"
        )


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.ones(2, 3), torch.ones(2)), r"argument 'bias' must be 1-D with 3 elements"),
        (
            (torch.ones(2, 3, 4, 4), torch.ones(4), "NCHW"),
            r"argument 'bias' must be 1-D with 3 elements \(the size of dimension 1",
        ),
        ((torch.ones(3), torch.ones(3)), r"argument 'value' must be at least 2-D"),
        ((torch.ones(2, 3), torch.ones(3), "CHWN"), r"argument 'data_format' must be 'NHWC'"),
        (
            (torch.ones(2, 3), torch.ones(3, dtype=torch.float64)),
            r"argument 'bias' must have the dtype of 'value' \(torch\.float32\)",
        ),
    ],
)
def test_bias_add_errors(args, message):
    with pytest.raises(ValueError, match=rf"torchscope\.nn\.bias_add: {message}"):
        ts.nn.bias_add(*args)
