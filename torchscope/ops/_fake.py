"""The fake (meta) kernels of the ``torchscope`` ops, and the argument checks they share
with the eager fallback.

The fake kernels give the output's shape, dtype, strides and device without computing
it, for ``torch.compile`` and ``torch.export``; ``torch.library.register_fake`` registers
them when the compiled library is loaded (its C++ points PyTorch at ``torchscope.ops``
for them: ``m.set_python_module``). Before that they run the checks of
``csrc/conv2d_bias_relu.cpp``, in its order and with its messages (each ``TORCH_CHECK``
mirrored by a ``torch._check``), so eager, compiled and exported calls fail alike.
The pure-PyTorch fallback runs the same checks through :func:`require`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch._prims_common as _prims_common

from .. import _native

OP = "torchscope::conv2d_bias_relu"
WITH_MASK_OP = "torchscope::conv2d_bias_relu_with_mask"
BACKWARD_OP = "torchscope::conv2d_bias_relu_backward"

Check = Callable[[Any, Callable[[], str]], None]


def require(condition: Any, message: Callable[[], str]) -> None:
    """``torch._check`` for the eager fallback path, which dynamo traces without a break."""
    if not condition:
        raise RuntimeError(message())


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype)


# ---------------------------------------------------------------- checks


def check_args(
    op: str,
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    *,
    bias: torch.Tensor | None = None,
    check: Check = torch._check,
) -> None:
    """The checks of csrc/conv2d_bias_relu.cpp, in its order, with the same messages.

    ``check`` is ``torch._check`` in the fake kernels (symbolic shapes) and
    :func:`require` on the eager fallback path (which torch.compile traces).
    """
    check(
        input.dim() == 4,
        lambda: (
            f"{op}: expected argument 'input' to be a 4-D tensor (N, C, H, W), but got a "
            f"{input.dim()}-D tensor of shape {list(input.shape)}"
        ),
    )
    check_weight_rank(op, weight, check)
    check(
        input.is_floating_point(),
        lambda: (
            f"{op}: expected argument 'input' to have a floating-point dtype, but got "
            f"{_dtype_name(input.dtype)}"
        ),
    )
    _check_like_input(op, "weight", weight, input, check)
    check_geometry(op, input, weight, stride, padding, dilation, groups, check)
    if bias is not None:
        check_bias_shape(op, bias, weight, check)
        _check_like_input(op, "bias", bias, input, check)


def check_weight_rank(op: str, weight: torch.Tensor, check: Check) -> None:
    check(
        weight.dim() == 4,
        lambda: (
            f"{op}: expected argument 'weight' to be a 4-D tensor (C_out, C_in / groups, "
            f"kH, kW), but got a {weight.dim()}-D tensor of shape {list(weight.shape)}"
        ),
    )


def _check_like_input(
    op: str, name: str, t: torch.Tensor, input: torch.Tensor, check: Check
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


def check_geometry(
    op: str,
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    check: Check,
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


def check_bias_shape(op: str, bias: torch.Tensor, weight: torch.Tensor, check: Check) -> None:
    check(
        bias.dim() == 1 and bias.shape[0] == weight.shape[0],
        lambda: (
            f"{op}: expected argument 'bias' to be a 1-D tensor of {weight.shape[0]} "
            f"elements (one per output channel of 'weight'), but got a tensor of shape "
            f"{list(bias.shape)}"
        ),
    )


def _check_backward_args(grad_output, mask, input, shape: list[Any]) -> None:
    """What csrc's check_conv2d_bias_relu_backward_args adds to the forward's checks:
    ``grad_output`` fits the output's ``shape``, ``mask`` is its relu mask."""
    torch._check(
        list(grad_output.shape) == shape,
        lambda: (
            f"{BACKWARD_OP}: expected argument 'grad_output' to have the "
            f"output's shape {shape}, but got {list(grad_output.shape)}"
        ),
    )
    torch._check(
        grad_output.dtype == input.dtype,
        lambda: (
            f"{BACKWARD_OP}: expected argument 'grad_output' to have the dtype of 'input' "
            f"({_dtype_name(input.dtype)}), but got {_dtype_name(grad_output.dtype)}"
        ),
    )
    torch._check(
        grad_output.device == input.device,
        lambda: (
            f"{BACKWARD_OP}: expected argument 'grad_output' to be on the device of 'input' "
            f"({input.device}), but got {grad_output.device}"
        ),
    )
    numel = shape[0] * shape[1] * shape[2] * shape[3]
    torch._check(
        mask.dim() == 1 and mask.shape[0] == _mask_bytes(numel) and mask.dtype == torch.uint8,
        lambda: (
            f"{BACKWARD_OP}: expected argument 'mask' to be the relu mask of the output "
            f"(1-D, torch.uint8, {_mask_bytes(numel)} bytes), but got a "
            f"{_dtype_name(mask.dtype)} tensor of shape {list(mask.shape)}"
        ),
    )
    torch._check(
        mask.device == input.device,
        lambda: (
            f"{BACKWARD_OP}: expected argument 'mask' to be on the device of 'input' "
            f"({input.device}), but got {mask.device}"
        ),
    )


# ---------------------------------------------------------------- shapes and layouts


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
    suggest = _prims_common.suggest_memory_format
    if suggest(input) == torch.channels_last or suggest(weight) == torch.channels_last:
        return torch.channels_last
    return torch.contiguous_format


def _mask_bytes(numel: Any) -> Any:
    """Bytes of the 1-bit relu mask of ``numel`` elements (csrc/epilogue.h)."""
    return (numel + 7) // 8


def _empty(shape: Sequence[Any], like: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)


# ---------------------------------------------------------------- fake kernels


def _fake_forward(input, weight, bias, stride, padding, dilation, groups):
    check_args(OP, input, weight, stride, padding, dilation, groups, bias=bias)
    shape = _output_shape(input, weight, stride, padding, dilation)
    return _empty(shape, input, _output_memory_format(input, weight))


def _fake_forward_with_mask(input, weight, bias, stride, padding, dilation, groups):
    output = _fake_forward(input, weight, bias, stride, padding, dilation, groups)
    mask = torch.empty([_mask_bytes(output.numel())], dtype=torch.uint8, device=output.device)
    return output, mask


def _fake_backward(
    grad_output, mask, input, weight, stride, padding, dilation, groups, output_mask
):
    check_args(BACKWARD_OP, input, weight, stride, padding, dilation, groups)
    shape = _output_shape(input, weight, stride, padding, dilation)
    _check_backward_args(grad_output, mask, input, shape)
    suggest = _prims_common.suggest_memory_format
    grad_input = _empty(input.shape, input, suggest(input)) if output_mask[0] else None
    grad_weight = _empty(weight.shape, weight, suggest(weight)) if output_mask[1] else None
    grad_bias = (
        _empty([weight.shape[0]], weight, torch.contiguous_format) if output_mask[2] else None
    )
    return grad_input, grad_weight, grad_bias


if _native.LOADED:
    torch.library.register_fake(OP)(_fake_forward)
    torch.library.register_fake(WITH_MASK_OP)(_fake_forward_with_mask)
    torch.library.register_fake(BACKWARD_OP)(_fake_backward)
