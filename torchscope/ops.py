"""Fused operations: ``conv2d_bias_relu``, backed by the compiled operator library.

``torch.ops.torchscope.conv2d_bias_relu`` is declared in C++ (``csrc/``), with a
CPU kernel (oneDNN's convolution with a fused bias+relu post-op, or
``at::convolution`` followed by a one-pass epilogue) and a CUDA kernel (cuDNN's
convolution followed by the same epilogue), and its autograd formula is
registered in C++ too: when a graph is recorded, the forward is
``torch.ops.torchscope.conv2d_bias_relu_with_mask``, which also returns the
1-bit relu mask that is saved for backward instead of the output, and the
backward is ``torch.ops.torchscope.conv2d_bias_relu_backward`` (or, when the
backward is itself recorded, ``create_graph=True``, the same computation in
differentiable ATen ops, so that double backward works). Under ``torch.autocast``
its autocast kernels cast the arguments as ATen's ``conv2d`` does. This module adds
what PyTorch needs in Python: the fake kernels (shapes, strides and argument
checks, for ``torch.compile`` and ``torch.export``).

Without the compiled library (see :func:`native_available`), the same function
computes ``relu(conv2d(...))`` with plain PyTorch and warns once. It does so too
where the C++ autograd function cannot serve: under ``torch.func`` transforms and
forward-mode AD (``torch.autograd.forward_ad``).

>>> x, w = torch.randn(1, 2, 5, 5), torch.randn(4, 2, 3, 3)
>>> torch.allclose(ts.ops.conv2d_bias_relu(x, w, None, padding=1),
...                torch.relu(torch.nn.functional.conv2d(x, w, padding=1)), atol=1e-5)
True
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd import forward_ad as _forward_ad

from . import _native
from ._fastpath import conv2d_bias_relu as _fast_op
from ._native import NativeExtensionWarning

__all__ = ["NativeExtensionWarning", "conv2d_bias_relu", "native_available"]

_OP = "torchscope::conv2d_bias_relu"
_WITH_MASK_OP = "torchscope::conv2d_bias_relu_with_mask"
_BACKWARD_OP = "torchscope::conv2d_bias_relu_backward"

IntPair = int | Sequence[int]


def native_available() -> bool:
    """Whether the compiled operator library ``torchscope._C`` is loaded.

    Returns:
        ``True`` when ``torch.ops.torchscope.conv2d_bias_relu`` runs the compiled
        kernels; ``False`` when :func:`conv2d_bias_relu` falls back to pure PyTorch.

    Example:
        >>> import torchscope as ts
        >>> isinstance(ts.ops.native_available(), bool)
        True
    """
    return _native.LOADED


def conv2d_bias_relu(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: IntPair = 1,
    padding: IntPair | str = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """``relu(conv2d(input, weight, bias, ...))`` as one fused operation.

    The arguments mean what they mean for :func:`torch.nn.functional.conv2d`.
    Gradients flow to ``input``, ``weight`` and ``bias``, to any order (double
    backward), and forward-mode AD gives tangents; the op follows
    ``torch.autocast`` as ``conv2d`` does, and works under
    ``torch.compile(fullgraph=True)`` and ``torch.export``. For the backward it
    keeps ``input``, ``weight`` and a 1-bit mask of where the output is
    positive (eager ``relu(conv2d(...))`` keeps the whole output).

    Args:
        input: ``(N, C_in, H, W)``, or ``(C_in, H, W)`` unbatched; NCHW or
            channels_last memory layout.
        weight: ``(C_out, C_in / groups, kH, kW)``.
        bias: ``(C_out,)``, or ``None``.
        stride: an int, or a list or tuple of 1 or 2 ints (integer types with
            ``__index__``, such as numpy's, count as ints).
        padding: like ``stride`` (non-negative), or ``"valid"`` (no padding) or
            ``"same"`` (output as large as the input; stride 1 only; an odd total
            pads the extra row/column at the bottom/right, as PyTorch does).
        dilation: like ``stride``.
        groups: the number of groups; it divides ``C_in`` and ``C_out``.

    Returns:
        The output, ``(N, C_out, H_out, W_out)``, channels_last when ``input`` or
        ``weight`` is channels_last, else contiguous.

    Note:
        On CPU in float32/bfloat16, when autograd does not record the call and
        the output has 32768 elements or more, the relu runs inside oneDNN's
        convolution, which turns a NaN pre-activation into 0 (as torch.compile's
        CPU conv+relu fusion does); elsewhere (training, smaller outputs, other
        dtypes, CUDA) NaN propagates as in ``torch.relu``.

    Raises:
        RuntimeError: when the tensors do not fit together (the message names
            the argument, what was found and what was expected, with the shapes
            as given).
        ValueError: for a malformed ``stride``, ``padding`` or ``dilation``
            (bools and floats included).

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> x = torch.tensor([[[[1.0, -2.0], [3.0, -4.0]]]])
        >>> w = torch.ones(1, 1, 1, 1)
        >>> ts.ops.conv2d_bias_relu(x, w, torch.tensor([0.5]))
        tensor([[[[1.5000, 0.0000],
                  [3.5000, 0.0000]]]])
        >>> ts.ops.conv2d_bias_relu(torch.ones(1, 2, 5, 5), torch.ones(4, 2, 3, 3), None,
        ...                         padding="same").shape
        torch.Size([1, 4, 5, 5])
    """
    if input.dim() == 4 and type(stride) is int and type(padding) is int and type(dilation) is int:
        # The usual call.
        unbatched = False
        stride_, padding_, dilation_ = [stride, stride], [padding, padding], [dilation, dilation]
    else:
        unbatched = input.dim() == 3
        input, stride_, padding_, dilation_ = _resolve_call(
            input, weight, bias, stride, padding, dilation, groups
        )
    devices = _native.KERNEL_DEVICES  # input.is_cpu first: building input.device costs 0.2 us
    native = _native.LOADED and (
        ("cpu" in devices) if input.is_cpu else (input.device.type in devices)
    )
    if native and not _composition_needed():
        # The op through its unboxed call where _fastpaths is built (see _fastpath.py).
        out = _fast_op(input, weight, bias, stride_, padding_, dilation_, groups)
        if out is NotImplemented:  # what the unboxed call leaves to the OpOverload
            out = torch.ops.torchscope.conv2d_bias_relu.default(
                input, weight, bias, stride_, padding_, dilation_, groups
            )
    else:
        if not _native.LOADED:
            _native.warn_fallback_once()
        elif not native:
            _native.warn_device_fallback_once(input.device.type)
        input, weight, bias = _autocast_args(input, weight, bias)
        _check_args(
            _OP, input, weight, stride_, padding_, dilation_, groups, bias=bias, check=_require
        )
        out = F.relu(F.conv2d(input, weight, bias, stride_, padding_, dilation_, groups))
    return out.squeeze(0) if unbatched else out


def _composition_needed() -> bool:
    """Whether the op's C++ autograd cannot serve this call, so that the composition of
    the same ops runs instead (the same numbers, without the fusion): under a torch.func
    transform (grad, vmap, jacrev, ...) and inside a forward-mode AD level
    (``torch.autograd.forward_ad.dual_level``), which the C++ autograd function does not
    support. torch.compile traces the op itself."""
    return (
        torch._C._are_functorch_transforms_active() or _forward_ad._current_level >= 0
    ) and not torch.compiler.is_compiling()


def _autocast_args(
    input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The tensors as the op's autocast kernel (csrc/conv2d_bias_relu_autocast.cpp) casts
    them, for the composition: under ``torch.autocast`` for ``input``'s device, floating
    tensors on that device other than float64 go to the autocast dtype."""
    device = input.device.type
    dtype = _autocast_dtype(device)
    if dtype is None:
        return input, weight, bias

    def cast(t: torch.Tensor | None) -> Any:
        eligible = (
            t is not None
            and t.is_floating_point()
            and t.dtype != torch.float64
            and t.device.type == device
        )
        return t.to(dtype) if eligible else t

    return cast(input), cast(weight), cast(bias)


def _autocast_dtype(device: str) -> torch.dtype | None:
    """The dtype ``torch.autocast`` runs convolutions in on ``device``, or None when it
    is not enabled there."""
    if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return None


# ---------------------------------------------------------------- arguments


def _resolve_call(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
) -> tuple[torch.Tensor, list[int], list[int], list[int]]:
    """The wrapper's general path: int pairs for ``stride``, ``padding`` and
    ``dilation``, and a 4-D ``input`` (an unbatched one batched, padded for what
    ``"same"`` leaves over), after checking the shapes as the caller gave them."""
    stride_ = _pair("stride", stride)
    dilation_ = _pair("dilation", dilation)
    padding_, extra = _resolve_padding(weight, padding, stride_, dilation_)
    _require(
        input.dim() in (3, 4),
        lambda: (
            f"{_OP}: expected argument 'input' to be a 4-D (N, C, H, W) or 3-D (C, H, W) tensor, "
            f"but got a {input.dim()}-D tensor of shape {list(input.shape)}"
        ),
    )
    _check_weight_rank(_OP, weight, _require)
    shown = "'same'" if isinstance(padding, str) and padding == "same" else None
    _check_geometry(
        _OP, input, weight, stride_, padding_, dilation_, groups, _require, extra, shown
    )
    if bias is not None:
        _check_bias_shape(_OP, bias, weight, _require)
    if input.dim() == 3:
        input = input.unsqueeze(0)
    if extra != [0, 0]:
        input = F.pad(input, [0, extra[1], 0, extra[0]])
    return input, stride_, padding_, dilation_


def _int(value: Any) -> int:
    """``value`` as an int when it is one (a numpy integer too, through
    ``__index__``, as ``torch.nn.functional.conv2d`` takes it); TypeError for the rest,
    bools included."""
    if isinstance(value, bool):
        raise TypeError("a bool is not an int here")
    return operator.index(value)


def _pair(name: str, value: Any) -> list[int]:
    """An int, or a list or tuple of 1 or 2 ints (as torch.nn.functional.conv2d takes
    them), as a pair."""
    try:
        if not isinstance(value, Sequence) or isinstance(value, str):
            return [_int(value), _int(value)]
        if len(value) == 1:
            return [_int(value[0]), _int(value[0])]
        if len(value) == 2:
            return [_int(value[0]), _int(value[1])]
    except TypeError:
        pass
    raise ValueError(f"{_OP}: argument '{name}' must be an int or a pair of ints, got {value!r}")


def _resolve_padding(
    weight: torch.Tensor,
    padding: Any,
    stride: list[int],
    dilation: list[int],
) -> tuple[list[int], list[int]]:
    """``padding`` as a symmetric pair, and the rows and columns to add at the bottom
    and right of the input for what that leaves over (``"same"``'s odd totals)."""
    if not isinstance(padding, str):
        return _pair("padding", padding), [0, 0]
    if padding == "valid":
        return [0, 0], [0, 0]
    if padding != "same":
        raise ValueError(
            f"{_OP}: argument 'padding' must be an int, a pair of ints, 'valid' or 'same', "
            f"got {padding!r}"
        )
    if stride != [1, 1]:
        raise ValueError(
            f"{_OP}: padding='same' needs stride 1 (as in torch.nn.functional.conv2d), "
            f"got stride={stride}; pad explicitly, or use torchscope.nn.conv2d_bias_relu "
            "for TensorFlow's 'SAME' with strides"
        )
    if weight.dim() != 4:
        return [0, 0], [0, 0]  # the checks report the weight's rank
    total = [dilation[d] * (weight.shape[d + 2] - 1) for d in range(2)]
    low = [t // 2 for t in total]
    return low, [t - 2 * lo for t, lo in zip(total, low, strict=True)]


def _require(condition: Any, message: Callable[[], str]) -> None:
    """``torch._check`` for the eager fallback path, which dynamo traces without a break."""
    if not condition:
        raise RuntimeError(message())


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype)


def _check_args(
    op: str,
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    *,
    bias: torch.Tensor | None = None,
    check: Callable[[Any, Callable[[], str]], None] = torch._check,
) -> None:
    """The checks of csrc/conv2d_bias_relu.cpp, in its order, with the same messages.

    ``check`` is ``torch._check`` in the fake kernels (symbolic shapes) and
    :func:`_require` on the eager fallback path (which torch.compile traces).
    """
    check(
        input.dim() == 4,
        lambda: (
            f"{op}: expected argument 'input' to be a 4-D tensor (N, C, H, W), but got a "
            f"{input.dim()}-D tensor of shape {list(input.shape)}"
        ),
    )
    _check_weight_rank(op, weight, check)
    check(
        input.is_floating_point(),
        lambda: (
            f"{op}: expected argument 'input' to have a floating-point dtype, but got "
            f"{_dtype_name(input.dtype)}"
        ),
    )
    _check_like_input(op, "weight", weight, input, check)
    _check_geometry(op, input, weight, stride, padding, dilation, groups, check)
    if bias is not None:
        _check_bias_shape(op, bias, weight, check)
        _check_like_input(op, "bias", bias, input, check)


def _check_weight_rank(op: str, weight: torch.Tensor, check: Callable[..., None]) -> None:
    check(
        weight.dim() == 4,
        lambda: (
            f"{op}: expected argument 'weight' to be a 4-D tensor (C_out, C_in / groups, "
            f"kH, kW), but got a {weight.dim()}-D tensor of shape {list(weight.shape)}"
        ),
    )


def _check_like_input(
    op: str, name: str, t: torch.Tensor, input: torch.Tensor, check: Callable[..., None]
) -> None:
    """``t`` has ``input``'s dtype and device."""
    check(
        t.dtype == input.dtype,
        lambda: (
            f"{op}: expected argument '{name}' to have the dtype of 'input' "
            f"({_dtype_name(input.dtype)}), but got {_dtype_name(t.dtype)}"
        ),
    )
    check(
        t.device == input.device,
        lambda: (
            f"{op}: expected argument '{name}' to be on the device of 'input' "
            f"({input.device}), but got {t.device}"
        ),
    )


def _check_geometry(
    op: str,
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    check: Callable[..., None],
    extra: Sequence[int] = (0, 0),
    padding_shown: str | None = None,
) -> None:
    """groups, the int pairs, and how ``input`` (4-D, or 3-D unbatched: channels at
    ``dim - 3``) and ``weight`` (4-D) fit. ``extra`` rows/columns are padded at the
    bottom/right on top of ``padding`` (``"same"``, which the messages then show as
    ``padding_shown``)."""
    check(
        groups > 0,
        lambda: f"{op}: expected argument 'groups' to be a positive integer, but got {groups}",
    )
    for name, value, low, what in (
        ("stride", stride, 1, "positive"),
        ("padding", padding, 0, "non-negative"),
        ("dilation", dilation, 1, "positive"),
    ):
        check(
            len(value) == 2 and value[0] >= low and value[1] >= low,
            lambda name=name, value=value, what=what: (
                f"{op}: expected argument '{name}' to be 2 {what} integers, but got {list(value)}"
            ),
        )
    channel_dim = input.dim() - 3
    check(
        weight.shape[1] * groups == input.shape[channel_dim],
        lambda: (
            f"{op}: expected argument 'input' to have weight.size(1) * groups = "
            f"{weight.shape[1]} * {groups} = {weight.shape[1] * groups} channels "
            f"(dim {channel_dim}), but got {input.shape[channel_dim]} channels (input shape "
            f"{list(input.shape)}, weight shape {list(weight.shape)})"
        ),
    )
    check(
        weight.shape[0] % groups == 0,
        lambda: (
            f"{op}: expected argument 'weight' to have a number of output channels (dim 0) "
            f"divisible by groups = {groups}, but got {weight.shape[0]}"
        ),
    )
    shown = list(padding) if padding_shown is None else padding_shown
    for d in range(2):
        padded = input.shape[channel_dim + 1 + d] + 2 * padding[d] + extra[d]
        kernel = dilation[d] * (weight.shape[d + 2] - 1) + 1
        check(
            padded >= kernel,
            lambda d=d, padded=padded, kernel=kernel: (
                f"{op}: expected argument 'input' to be at least as large as the dilated "
                f"kernel of 'weight' after padding, but got padded size "
                f"{padded} < kernel size {kernel} in spatial dim {d} (input shape "
                f"{list(input.shape)}, weight shape {list(weight.shape)}, padding {shown}, "
                f"dilation {list(dilation)})"
            ),
        )


def _check_bias_shape(
    op: str, bias: torch.Tensor, weight: torch.Tensor, check: Callable[..., None]
) -> None:
    check(
        bias.dim() == 1 and bias.shape[0] == weight.shape[0],
        lambda: (
            f"{op}: expected argument 'bias' to be a 1-D tensor of {weight.shape[0]} "
            f"elements (one per output channel of 'weight'), but got a tensor of shape "
            f"{list(bias.shape)}"
        ),
    )


def _output_shape(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> list[Any]:
    shape = [input.shape[0], weight.shape[0]]
    for d in range(2):
        kernel = dilation[d] * (weight.shape[d + 2] - 1) + 1
        shape.append((input.shape[d + 2] + 2 * padding[d] - kernel) // stride[d] + 1)
    return shape


def _output_memory_format(input: torch.Tensor, weight: torch.Tensor) -> torch.memory_format:
    """csrc's conv2d_output_memory_format: channels_last if input or weight is."""
    suggest = torch._prims_common.suggest_memory_format
    if suggest(input) == torch.channels_last or suggest(weight) == torch.channels_last:
        return torch.channels_last
    return torch.contiguous_format


def _empty(shape: Sequence[Any], like: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)


# ------------------------------------------------- registrations with PyTorch


def _fake_forward(input, weight, bias, stride, padding, dilation, groups):
    _check_args(_OP, input, weight, stride, padding, dilation, groups, bias=bias)
    shape = _output_shape(input, weight, stride, padding, dilation)
    return _empty(shape, input, _output_memory_format(input, weight))


def _fake_forward_with_mask(input, weight, bias, stride, padding, dilation, groups):
    output = _fake_forward(input, weight, bias, stride, padding, dilation, groups)
    mask = torch.empty([_mask_bytes(output.numel())], dtype=torch.uint8, device=output.device)
    return output, mask


def _mask_bytes(numel: Any) -> Any:
    """Bytes of the 1-bit relu mask of ``numel`` elements (csrc/epilogue.h)."""
    return (numel + 7) // 8


def _fake_backward(
    grad_output, mask, input, weight, stride, padding, dilation, groups, output_mask
):
    _check_args(_BACKWARD_OP, input, weight, stride, padding, dilation, groups)
    shape = _output_shape(input, weight, stride, padding, dilation)
    torch._check(
        list(grad_output.shape) == shape,
        lambda: (
            f"{_BACKWARD_OP}: expected argument 'grad_output' to have the "
            f"output's shape {shape}, but got {list(grad_output.shape)}"
        ),
    )
    torch._check(
        grad_output.dtype == input.dtype,
        lambda: (
            f"{_BACKWARD_OP}: expected argument 'grad_output' to have the dtype of 'input' "
            f"({_dtype_name(input.dtype)}), but got {_dtype_name(grad_output.dtype)}"
        ),
    )
    torch._check(
        grad_output.device == input.device,
        lambda: (
            f"{_BACKWARD_OP}: expected argument 'grad_output' to be on the device of 'input' "
            f"({input.device}), but got {grad_output.device}"
        ),
    )
    numel = shape[0] * shape[1] * shape[2] * shape[3]
    torch._check(
        mask.dim() == 1 and mask.shape[0] == _mask_bytes(numel) and mask.dtype == torch.uint8,
        lambda: (
            f"{_BACKWARD_OP}: expected argument 'mask' to be the relu mask of the output "
            f"(1-D, torch.uint8, {_mask_bytes(numel)} bytes), but got a "
            f"{_dtype_name(mask.dtype)} tensor of shape {list(mask.shape)}"
        ),
    )
    torch._check(
        mask.device == input.device,
        lambda: (
            f"{_BACKWARD_OP}: expected argument 'mask' to be on the device of 'input' "
            f"({input.device}), but got {mask.device}"
        ),
    )
    suggest = torch._prims_common.suggest_memory_format
    grad_input = _empty(input.shape, input, suggest(input)) if output_mask[0] else None
    grad_weight = _empty(weight.shape, weight, suggest(weight)) if output_mask[1] else None
    grad_bias = (
        _empty([weight.shape[0]], weight, torch.contiguous_format) if output_mask[2] else None
    )
    return grad_input, grad_weight, grad_bias


if _native.LOADED:
    torch.library.register_fake(_OP)(_fake_forward)
    torch.library.register_fake(_WITH_MASK_OP)(_fake_forward_with_mask)
    torch.library.register_fake(_BACKWARD_OP)(_fake_backward)
