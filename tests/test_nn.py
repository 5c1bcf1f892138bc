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


@pytest.mark.parametrize(
    "data_format, shape, channel_dim",
    [
        (None, (2, 3, 4), 2),
        ("NWC", (2, 3, 4), 2),
        ("NDHWC", (1, 2, 3, 2, 4), 4),
        ("NHWC", (2, 3, 4, 5), 3),
        ("N...C", (2, 3), 1),
        ("NCW", (2, 4, 3), 1),
        ("NCDHW", (1, 4, 2, 3, 2), 1),
        ("NCHW", (2, 4, 3, 3), 1),
        ("NC...", (2, 4, 3, 3, 3), 1),
    ],
)
def test_bias_add_reads_data_format_as_tensorflow(data_format, shape, channel_dim):
    """tf.nn.bias_add: "NC..." strings put the channels second; None and other "N...C"
    strings last."""
    value = torch.zeros(shape)
    bias = torch.arange(1.0, shape[channel_dim] + 1)
    out = ts.nn.bias_add(value, bias, data_format)
    expected = bias.reshape([-1] + [1] * (len(shape) - 1 - channel_dim))
    torch.testing.assert_close(out, torch.zeros(shape) + expected)


def test_bias_add_defaults_to_channels_last():
    value, bias = torch.zeros(2, 3, 4), torch.ones(4)
    torch.testing.assert_close(ts.nn.bias_add(value, bias), value + bias)


@pytest.mark.parametrize("fn", ["conv2d", "conv2d_bias_relu"])
def test_conv_data_format_none_means_nhwc(fn):
    x, f, b = torch.randn(1, 5, 4, 3), torch.randn(3, 3, 3, 2), torch.randn(2)
    args = (x, f, b) if fn == "conv2d_bias_relu" else (x, f)
    conv = getattr(ts.nn, fn)
    torch.testing.assert_close(
        conv(*args, 1, "SAME", data_format=None), conv(*args, 1, "SAME", data_format="NHWC")
    )


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
    with pytest.raises(
        ValueError,
        match=r"torchscope\.nn\.conv2d_bias_relu: argument 'bias' must be 1-D with 4 elements "
        r"\(the out_channels of 'filter', shape \[3, 3, 3, 4\]\), got shape \[3\]",
    ):
        ts.nn.conv2d_bias_relu(
            torch.ones(1, 5, 5, 3), torch.ones(3, 3, 3, 4), torch.ones(3), 1, "SAME"
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (  # 6 channels / 3 in_channels = 2 groups; 5 out_channels: was a RuntimeError in OIHW
            dict(input=torch.ones(1, 5, 5, 6), filter=torch.ones(3, 3, 3, 5)),
            r"argument 'filter' has 5 output channels \(dim 3\), which must be a multiple of "
            r"the 2 groups \('input' has 6 channels, 2 times the filter's 3 in_channels; "
            r"input shape \[1, 5, 5, 6\] \(NHWC\), filter shape \[3, 3, 3, 5\] \(HWIO\)\)",
        ),
        (
            dict(input=torch.ones(1, 6, 5, 5), filter=torch.ones(3, 3, 3, 5), data_format="NCHW"),
            r"argument 'filter' has 5 output channels .* input shape \[1, 6, 5, 5\] \(NCHW\)",
        ),
        (  # was PyTorch's "Kernel size can't be greater than actual input size" in NCHW
            dict(input=torch.ones(1, 2, 5, 3), padding="VALID"),
            r"argument 'filter' \(dilated height 3\) is larger than the height of 'input' after "
            r"padding \(2\) \(input shape \[1, 2, 5, 3\] \(NHWC\), filter shape "
            r"\[3, 3, 3, 4\] \(HWIO\), padding='VALID', dilations=\[1, 1\]\)",
        ),
        (
            dict(padding="VALID", dilations=[1, 3]),
            r"argument 'filter' \(dilated width 7\) is larger than the width of 'input' after "
            r"padding \(5\)",
        ),
        (
            dict(input=torch.ones(1, 1, 1, 3), padding=[[0, 0], [0, 1], [1, 1], [0, 0]]),
            r"argument 'filter' \(dilated height 3\) is larger than the height of 'input' after "
            r"padding \(2\)",
        ),
        (
            dict(filter=torch.ones(3, 3, 3, 4, dtype=torch.float64)),
            r"argument 'filter' must have the dtype of 'input' \(torch\.float32\), "
            r"got torch\.float64",
        ),
        (
            dict(input=torch.ones(1, 5, 5, 3, dtype=torch.int64)),
            r"argument 'input' must have a floating-point dtype, got torch\.int64",
        ),
    ],
)
@pytest.mark.parametrize("fn", ["conv2d", "conv2d_bias_relu"])
def test_conv_errors_show_the_callers_layouts(fn, kwargs, message):
    args = dict(
        input=torch.ones(1, 5, 5, 3), filter=torch.ones(3, 3, 3, 4), strides=1, padding="SAME"
    )
    args.update(kwargs)
    if fn == "conv2d_bias_relu":
        args["bias"] = torch.ones(args["filter"].shape[3])
    with pytest.raises(ValueError, match=rf"torchscope\.nn\.{fn}: {message}"):
        getattr(ts.nn, fn)(**args)


def test_fused_bias_dtype_error_names_bias():
    with pytest.raises(
        ValueError,
        match=r"torchscope\.nn\.conv2d_bias_relu: argument 'bias' must have the dtype of "
        r"'input' \(torch\.float32\), got torch\.float64",
    ):
        ts.nn.conv2d_bias_relu(
            torch.ones(1, 5, 5, 3), torch.ones(3, 3, 3, 4), torch.ones(4).double(), 1, "SAME"
        )


@pytest.mark.parametrize("fn", ["conv2d", "conv2d_bias_relu"])
def test_conv_under_autocast_takes_mixed_dtypes(fn):
    """The dtype check gives way to torch.autocast, which casts as PyTorch's conv2d."""
    x = torch.randn(1, 5, 5, 3, dtype=torch.bfloat16)
    f, b = torch.randn(3, 3, 3, 4), torch.randn(4)
    args = (x, f, b) if fn == "conv2d_bias_relu" else (x, f)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = getattr(ts.nn, fn)(*args, 1, "SAME")
        fused = fn == "conv2d_bias_relu"
        expected = F.conv2d(
            x.permute(0, 3, 1, 2), f.permute(3, 2, 0, 1), b if fused else None, 1, 1
        )
        expected = F.relu(expected) if fused else expected
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected.permute(0, 2, 3, 1), atol=5e-2, rtol=2e-2)


def test_strides_dilations_and_padding_take_numpy_integers():
    np = pytest.importorskip("numpy")
    x, f = torch.randn(1, 7, 6, 2), torch.randn(3, 2, 2, 4)
    got = ts.nn.conv2d(x, f, np.int64(2), "SAME", dilations=[np.int32(1), np.int64(2)])
    torch.testing.assert_close(got, ts.nn.conv2d(x, f, 2, "SAME", dilations=[1, 2]))
    got = ts.nn.conv2d(x, f, [1, np.int64(2), 1, 1], "VALID")
    torch.testing.assert_close(got, ts.nn.conv2d(x, f, [1, 2, 1, 1], "VALID"))
    pad = [[0, 0], [np.int64(1), 0], [0, np.int32(2)], [0, 0]]
    got = ts.nn.conv2d(x, f, 1, pad)
    torch.testing.assert_close(got, ts.nn.conv2d(x, f, 1, [[0, 0], [1, 0], [0, 2], [0, 0]]))


@pytest.mark.parametrize(
    "strides",
    [True, [1, True], 1.0, [2.0, 2.0], "2"],
    ids=["bool", "bool-in-list", "float", "floats", "str"],
)
def test_strides_still_reject_bools_floats_and_strings(strides):
    with pytest.raises(ValueError, match=r"argument 'strides' must be a positive int"):
        ts.nn.conv2d(torch.ones(1, 5, 5, 3), torch.ones(3, 3, 3, 4), strides, "SAME")


# ------------------------------------------------------ empty inputs, "SAME"


@pytest.mark.parametrize(
    "data_format, shape, strides, expected",
    [
        ("NHWC", (1, 0, 5, 4), 1, (1, 0, 5, 2)),
        ("NHWC", (1, 0, 5, 4), 2, (1, 0, 3, 2)),
        ("NHWC", (2, 4, 0, 4), [1, 2], (2, 4, 0, 2)),
        ("NCHW", (1, 4, 0, 5), 1, (1, 2, 0, 5)),
    ],
)
@pytest.mark.parametrize("fn", ["conv2d", "conv2d_bias_relu"])
def test_same_with_an_empty_dimension_gives_an_empty_output(
    fn, data_format, shape, strides, expected
):
    """TensorFlow's output size for "SAME" is ceil(size / stride): 0 for an empty one."""
    args = (torch.randn(shape), torch.randn(3, 3, 4, 2))
    if fn == "conv2d_bias_relu":
        args += (torch.randn(2),)
    out = getattr(ts.nn, fn)(*args, strides, "SAME", data_format=data_format)
    assert out.shape == expected
    assert out.dtype == torch.float32


def test_valid_with_an_empty_dimension_still_raises():
    with pytest.raises(ValueError, match=r"argument 'filter' \(dilated height 3\) is larger"):
        ts.nn.conv2d(torch.randn(1, 0, 5, 4), torch.randn(3, 3, 4, 2), 1, "VALID")


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.ones(2, 3), torch.ones(2)), r"argument 'bias' must be 1-D with 3 elements"),
        (
            (torch.ones(2, 3, 4, 4), torch.ones(4), "NCHW"),
            r"argument 'bias' must be 1-D with 3 elements \(the size of dimension 1",
        ),
        ((torch.ones(3), torch.ones(3)), r"argument 'value' must be at least 2-D"),
        (
            (torch.ones(2, 3), torch.ones(3), "CHWN"),
            r"argument 'data_format' must be None, a string of the form 'N\.\.\.C' .* "
            r"got 'CHWN'",
        ),
        ((torch.ones(2, 3), torch.ones(3), "NHW"), r"argument 'data_format' .* got 'NHW'"),
        ((torch.ones(2, 3), torch.ones(3), ""), r"argument 'data_format' .* got ''"),
        ((torch.ones(2, 3), torch.ones(3), 1), r"argument 'data_format' .* got 1"),
        (
            (torch.ones(2, 3), torch.ones(3, dtype=torch.float64)),
            r"argument 'bias' must have the dtype of 'value' \(torch\.float32\)",
        ),
    ],
)
def test_bias_add_errors(args, message):
    with pytest.raises(ValueError, match=rf"torchscope\.nn\.bias_add: {message}"):
        ts.nn.bias_add(*args)
