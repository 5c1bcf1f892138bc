"""The typed wrapper of ``torch.ops.torchscope.conv2d_bias_relu``: argument resolution
(int pairs, ``"same"``/``"valid"`` padding, unbatched inputs) and the choice between the
compiled op and the pure-PyTorch composition ``relu(conv2d(...))``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd import forward_ad as _forward_ad

from .. import _native
from .._fastpath import conv2d_bias_relu as _fast_op
from ._fake import OP, check_args, check_bias_shape, check_geometry, check_weight_rank, require

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

    NaN and infinities come out where eager ``relu(conv2d(...))`` puts them, on
    every path (CPU and CUDA, training and not, both layouts): a NaN
    pre-activation stays NaN, as in ``torch.relu``.

    Raises:
        TypeError: when ``input`` or ``weight`` is not a tensor, ``bias`` is
            neither a tensor nor None, or ``groups`` is not an int (the message
            names the argument and the type found).
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
    if (
        type(input) is not torch.Tensor
        or type(weight) is not torch.Tensor
        or (bias is not None and type(bias) is not torch.Tensor)
        or type(groups) is not int
    ):
        groups = _checked_types(input, weight, bias, groups)  # subclasses (Parameter) pass
    if input.dim() == 4 and type(stride) is int and type(padding) is int and type(dilation) is int:
        # The usual call.
        unbatched = False
        stride_, padding_, dilation_ = [stride, stride], [padding, padding], [dilation, dilation]
    else:
        unbatched = input.dim() == 3
        input, stride_, padding_, dilation_ = _resolve_call(
            input, weight, bias, stride, padding, dilation, groups
        )
    devices = _native.KERNEL_DEVICES  # input.is_cpu first: cheaper than building input.device
    native = _native.LOADED and (
        ("cpu" in devices) if input.is_cpu else (input.device.type in devices)
    )
    if native and not composition_needed():
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
        check_args(
            OP, input, weight, stride_, padding_, dilation_, groups, bias=bias, check=require
        )
        out = F.relu(F.conv2d(input, weight, bias, stride_, padding_, dilation_, groups))
    return out.squeeze(0) if unbatched else out


def composition_needed() -> bool:
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
    dtype = autocast_dtype(device)
    if dtype is None:
        return input, weight, bias

    def cast(t: torch.Tensor | None) -> Any:
        if t is None or not t.is_floating_point() or t.dtype == torch.float64:
            return t
        return t.to(dtype) if t.device.type == device else t

    return cast(input), cast(weight), cast(bias)


def autocast_dtype(device: str) -> torch.dtype | None:
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
    require(
        input.dim() in (3, 4),
        lambda: (
            f"{OP}: expected argument 'input' to be a 4-D (N, C, H, W) or 3-D (C, H, W) tensor, "
            f"but got a {input.dim()}-D tensor of shape {list(input.shape)}"
        ),
    )
    check_weight_rank(OP, weight, require)
    shown = "'same'" if isinstance(padding, str) and padding == "same" else None
    check_geometry(OP, input, weight, stride_, padding_, dilation_, groups, require, extra, shown)
    if bias is not None:
        check_bias_shape(OP, bias, weight, require)
    if input.dim() == 3:
        input = input.unsqueeze(0)
    if extra != [0, 0]:
        input = F.pad(input, [0, extra[1], 0, extra[0]])
    return input, stride_, padding_, dilation_


def _checked_types(input: Any, weight: Any, bias: Any, groups: Any) -> int:
    """``groups`` as an int, after a TypeError naming the first argument of the wrong
    type, if there is one."""
    for name, value, allowed in (
        ("input", input, "a torch.Tensor"),
        ("weight", weight, "a torch.Tensor"),
        ("bias", bias, "a torch.Tensor or None"),
    ):
        if not isinstance(value, torch.Tensor) and not (name == "bias" and value is None):
            raise TypeError(
                f"{OP}: argument '{name}' must be {allowed}, got {type(value).__name__}"
            )
    try:
        return _int(groups)
    except TypeError:
        raise TypeError(
            f"{OP}: argument 'groups' must be an int, got {type(groups).__name__}"
        ) from None


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
    raise ValueError(f"{OP}: argument '{name}' must be an int or a pair of ints, got {value!r}")


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
            f"{OP}: argument 'padding' must be an int, a pair of ints, 'valid' or 'same', "
            f"got {padding!r}"
        )
    if stride != [1, 1]:
        raise ValueError(
            f"{OP}: padding='same' needs stride 1 (as in torch.nn.functional.conv2d), "
            f"got stride={stride}; pad explicitly, or use torchscope.nn.conv2d_bias_relu "
            "for TensorFlow's 'SAME' with strides"
        )
    if weight.dim() != 4:
        return [0, 0], [0, 0]  # the checks report the weight's rank
    total = [dilation[d] * (weight.shape[d + 2] - 1) for d in range(2)]
    low = [t // 2 for t in total]
    return low, [t - 2 * lo for t, lo in zip(total, low, strict=True)]
