"""``batch_normalization``, as ``tf.compat.v1.layers.batch_normalization``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.compiler import is_compiling

from .._checks import describe
from .._initializers import ones_initializer, zeros_initializer
from .._types import Constraint, InitializerLike, Regularizer, Reuse
from ._base import check_bool, check_inputs, check_training, layer_dtype, layer_scope, weight

__all__ = ["batch_normalization"]

_ZEROS = zeros_initializer()
_ONES = ones_initializer()
_LAYER = "batch_normalization"


def batch_normalization(
    inputs: torch.Tensor,
    axis: int | Sequence[int] = -1,
    momentum: float = 0.99,
    epsilon: float = 1e-3,
    center: bool = True,
    scale: bool = True,
    beta_initializer: InitializerLike | None = _ZEROS,
    gamma_initializer: InitializerLike | None = _ONES,
    moving_mean_initializer: InitializerLike | None = _ZEROS,
    moving_variance_initializer: InitializerLike | None = _ONES,
    beta_regularizer: Regularizer | None = None,
    gamma_regularizer: Regularizer | None = None,
    beta_constraint: Constraint | None = None,
    gamma_constraint: Constraint | None = None,
    training: bool | torch.Tensor = False,
    trainable: bool = True,
    name: str | None = None,
    reuse: Reuse = None,
    renorm: bool = False,
    renorm_clipping: dict[str, float] | None = None,
    renorm_momentum: float = 0.99,
    fused: bool | None = None,
    virtual_batch_size: int | None = None,
    adjustment: Any = None,
) -> torch.Tensor:
    """Batch normalization, as ``tf.compat.v1.layers.batch_normalization``.

    Makes (or reuses) ``<scope>/gamma`` (with ``scale``), ``<scope>/beta`` (with
    ``center``), and the non-trainable ``<scope>/moving_mean`` and
    ``<scope>/moving_variance``, one value per entry along ``axis``; the scope is
    ``name``, else ``batch_normalization``, ``batch_normalization_1``, ...

    In training, the output is normalised with the batch's mean and (biased) variance,
    and the moving averages are updated in the forward, as TensorFlow's ``UPDATE_OPS``
    would update them when run: ``moving -= (moving - batch) * (1 - momentum)``, outside
    autograd. The variance that update uses is TensorFlow's: with Bessel's correction
    (``n / (n - 1)``) where TensorFlow takes its fused kernel (4-D inputs normalised
    along axis 1 or 3, 5-D along 1 or 4, unless ``fused=False``), the biased one
    elsewhere. There is nothing to run afterwards: a port drops
    ``tf.get_collection(tf.GraphKeys.UPDATE_OPS)`` and its ``control_dependencies``
    (torchscope's ``UPDATE_OPS`` collection stays empty). Outside training the output is
    normalised with the moving averages. Float16 and bfloat16 inputs are normalised in
    float32, with float32 variables, as TensorFlow does.

    Args:
        inputs: a floating-point tensor.
        axis: the axis (or axes) normalised per entry, usually the channels: -1 for
            channels-last, 1 for channels-first.
        momentum: of the moving averages.
        epsilon: added to the variance.
        center, scale: whether to make and add ``beta``, and make and multiply by ``gamma``.
        beta_initializer: default zeros; ``gamma_initializer``,
            ``moving_mean_initializer`` and ``moving_variance_initializer`` default to
            ones, zeros and ones.
        beta_regularizer, gamma_regularizer: ``fn(variable) -> loss`` (added to the
            scope's regularizer, which applies to all four variables, as in TensorFlow).
        beta_constraint, gamma_constraint: ``fn(variable) -> projected``.
        training: a bool, or a one-element bool tensor (both paths are then computed, and
            the moving averages updated only where it is true, without reading it back).
        trainable: False makes ``gamma`` and ``beta`` non-trainable too.
        name, reuse: as for :func:`dense`.
        renorm, renorm_clipping, renorm_momentum: batch renormalization is not
            supported: ``renorm=True`` raises ValueError (the other two are ignored
            without it, as in TensorFlow).
        fused: None or True: TensorFlow's fused kernel where it applies, False: never;
            decides only which variance the moving variance is updated with.
        virtual_batch_size, adjustment: not supported (ValueError unless None).

    Example:
        >>> x = torch.randn(8, 3)
        >>> y = ts.layers.batch_normalization(x, training=True)
        >>> [ts.name_of(v) for v in ts.global_variables()]  # doctest: +NORMALIZE_WHITESPACE
        ['batch_normalization/gamma', 'batch_normalization/beta',
         'batch_normalization/moving_mean', 'batch_normalization/moving_variance']
        >>> [ts.name_of(v) for v in ts.trainable_variables()]
        ['batch_normalization/gamma', 'batch_normalization/beta']
        >>> torch.allclose(y.mean(0), torch.zeros(3), atol=1e-6)
        True
    """
    check_inputs(_LAYER, inputs)
    _refuse(renorm, virtual_batch_size, adjustment)
    axes = _check_axis(axis, inputs)
    momentum = _check_number("momentum", momentum)
    epsilon = _check_number("epsilon", epsilon)
    check_bool(_LAYER, "center", center)
    check_bool(_LAYER, "scale", scale)
    training = check_training(_LAYER, training)
    if fused is not None:
        check_bool(_LAYER, "fused", fused)
    ndim = inputs.dim()
    if len(axes) == 1:
        shape = [inputs.shape[axes[0]]]
    else:
        shape = [inputs.shape[d] if d in axes else 1 for d in range(ndim)]
    half = inputs.dtype in (torch.float16, torch.bfloat16)
    param_dtype = torch.float32 if half else inputs.dtype
    with layer_scope(_LAYER, name, reuse):
        dtype = layer_dtype(inputs, param_dtype)
        gamma = beta = None
        if scale:
            gamma = weight(
                "gamma",
                shape,
                dtype,
                gamma_initializer,
                gamma_regularizer,
                trainable,
                gamma_constraint,
            )
        if center:
            beta = weight(
                "beta", shape, dtype, beta_initializer, beta_regularizer, trainable, beta_constraint
            )
        moving_mean = weight("moving_mean", shape, dtype, moving_mean_initializer, trainable=False)
        moving_variance = weight(
            "moving_variance", shape, dtype, moving_variance_initializer, trainable=False
        )
        x = inputs.float() if half else inputs
        reduced = [d for d in range(ndim) if d not in axes]
        if training is False:
            mean, variance = moving_mean, moving_variance
        else:
            mean, variance = _moments(x, reduced, keepdim=len(axes) > 1)
            fused_kernel = fused is not False and _fused_applies(axes, ndim)
            _update(
                moving_mean, moving_variance, mean, variance, momentum, training, fused_kernel, x
            )
            if isinstance(training, torch.Tensor):
                mean = torch.where(training, mean, moving_mean)
                variance = torch.where(training, variance, moving_variance)
        outputs = _normalize(x, axes, mean, variance, beta, gamma, epsilon)
        return outputs.to(inputs.dtype) if half else outputs


def _normalize(
    x: torch.Tensor,
    axes: list[int],
    mean: torch.Tensor,
    variance: torch.Tensor,
    offset: torch.Tensor | None,
    scale: torch.Tensor | None,
    epsilon: float,
) -> torch.Tensor:
    """``tf.nn.batch_normalization``'s formula: ``x * inv + (offset - mean * inv)`` with
    ``inv = rsqrt(variance + epsilon) * scale``; the statistics broadcast along ``axes``."""
    if len(axes) == 1 and axes[0] != x.dim() - 1:
        shape = [1] * x.dim()
        shape[axes[0]] = x.shape[axes[0]]
        mean, variance = mean.reshape(shape), variance.reshape(shape)
        offset = None if offset is None else offset.reshape(shape)
        scale = None if scale is None else scale.reshape(shape)
    inv = torch.rsqrt(variance + epsilon)
    if scale is not None:
        inv = inv * scale
    shift = -mean * inv if offset is None else offset - mean * inv
    return x * inv + shift


def _moments(x: torch.Tensor, reduced: list[int], keepdim: bool) -> tuple[torch.Tensor, ...]:
    """The batch's mean and biased variance over ``reduced`` (``tf.nn.moments``)."""
    if not reduced:  # nothing to reduce over: each value is its own mean
        return x, torch.zeros_like(x)
    variance, mean = torch.var_mean(x, dim=reduced, correction=0, keepdim=keepdim)
    return mean, variance


@torch.no_grad()
def _update(
    moving_mean: torch.Tensor,
    moving_variance: torch.Tensor,
    mean: torch.Tensor,
    variance: torch.Tensor,
    momentum: float,
    training: bool | torch.Tensor,
    fused_kernel: bool,
    x: torch.Tensor,
) -> None:
    """TensorFlow's update ops, run now: ``moving -= (moving - value) * (1 - momentum)``,
    the variance with Bessel's correction where TensorFlow's fused kernel computes it.
    Not while backward recomputes the forward (``ts.checkpoint``): the forward updated."""
    if not is_compiling() and torch._C._current_graph_task_id() != -1:
        return
    if fused_kernel:
        count = x.numel() // max(variance.numel(), 1)
        variance = variance * (count / max(count - 1, 1))
    decay = 1.0 - momentum
    for moving, value in ((moving_mean, mean), (moving_variance, variance)):
        new = moving - (moving - value.to(moving.dtype)) * decay
        if isinstance(training, torch.Tensor):
            new = torch.where(training, new, moving)
        moving.copy_(new)


def _fused_applies(axes: list[int], ndim: int) -> bool:
    """Where TensorFlow's layer takes the fused kernel (``fused=None`` or True)."""
    return (ndim == 4 and axes in ([1], [3])) or (ndim == 5 and axes in ([1], [4]))


def _check_axis(axis: Any, inputs: torch.Tensor) -> list[int]:
    ndim = inputs.dim()
    values = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if not values or any(isinstance(a, bool) or not isinstance(a, int) for a in values):
        raise TypeError(
            f"torchscope.layers.{_LAYER}: argument 'axis' must be an int or a list of ints, "
            f"got {describe(axis)}"
        )
    axes = [a + ndim if a < 0 else a for a in values]
    if any(not 0 <= a < ndim for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(
            f"torchscope.layers.{_LAYER}: argument 'axis' must name distinct dimensions of "
            f"'inputs' (shape {list(inputs.shape)}: -{ndim} to {ndim - 1}), got {axis!r}"
        )
    return sorted(axes)


def _check_number(argument: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"torchscope.layers.{_LAYER}: argument '{argument}' must be a number, got "
            f"{describe(value)}"
        )
    return float(value)


def _refuse(renorm: Any, virtual_batch_size: Any, adjustment: Any) -> None:
    """ValueError for TensorFlow's arguments that torchscope does not implement."""
    for argument, value, given in (
        ("renorm", renorm, bool(renorm)),
        ("virtual_batch_size", virtual_batch_size, virtual_batch_size is not None),
        ("adjustment", adjustment, adjustment is not None),
    ):
        if given:
            raise ValueError(
                f"torchscope.layers.{_LAYER}: argument '{argument}' is not supported (batch "
                f"renormalization, ghost batches and adjustments are not implemented), got "
                f"{describe(value)}; leave it at its default ({argument}="
                f"{'False' if argument == 'renorm' else 'None'})"
            )
