"""Losses: ``l2_loss`` and the cross entropies from logits, with TensorFlow's formulas
and gradients."""

from __future__ import annotations

import torch

from ._args import alias, broadcasts, check_floating, check_tensors

_HALF = (torch.float16, torch.bfloat16)


def l2_loss(t: torch.Tensor, name: str | None = None) -> torch.Tensor:
    """``sum(t ** 2) / 2``, as ``tf.nn.l2_loss`` (a 0-D tensor of ``t``'s dtype).

    Args:
        t: a floating-point tensor.
        name: ignored (PyTorch has no graph to name operations in).

    Returns:
        Half the sum of the squares of ``t``'s elements.

    Raises:
        TypeError: ``t`` is not a tensor.
        ValueError: ``t`` is not floating point.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> ts.nn.l2_loss(torch.tensor([1.0, 2.0, 3.0]))
        tensor(7.)
    """
    check_tensors("l2_loss", t=t)
    check_floating("l2_loss", "t", t)
    return t.square().sum() * 0.5


def softmax_cross_entropy_with_logits_v2(
    labels: torch.Tensor,
    logits: torch.Tensor,
    axis: int | None = None,
    name: str | None = None,
    dim: int | None = None,
) -> torch.Tensor:
    """``-sum(labels * log_softmax(logits), axis)``, as
    ``tf.compat.v1.nn.softmax_cross_entropy_with_logits_v2``.

    Gradients flow into ``labels`` too (``-log_softmax(logits)``; wrap ``labels``
    in ``.detach()`` for TensorFlow 1's ``softmax_cross_entropy_with_logits``). The
    gradient with respect to ``logits`` is TensorFlow's ``softmax(logits) -
    labels``, which is the derivative of the loss only when each ``labels``
    distribution sums to 1 (TensorFlow's kernel assumes so, and so does this).
    float16 and bfloat16 logits are computed in float32; ``labels`` (of any dtype:
    one-hot integers too) is cast to that precision.

    Args:
        labels: a distribution over the classes along ``axis`` for each example,
            of ``logits``'s shape (or one that broadcasts to it).
        logits: unscaled log-probabilities, at least 1-D.
        axis: the class dimension (default -1, the last).
        name: ignored (PyTorch has no graph to name operations in).
        dim: ``axis``'s deprecated TensorFlow spelling; either works, not both.

    Returns:
        The loss per example: ``logits``'s shape without ``axis``, its dtype.

    Raises:
        TypeError: ``labels`` or ``logits`` is not a tensor.
        ValueError: naming the argument that is malformed or does not fit.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
        >>> labels = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
        >>> ts.nn.softmax_cross_entropy_with_logits_v2(labels, logits)
        tensor([0.1269, 0.6931])
    """
    fn = "softmax_cross_entropy_with_logits_v2"
    check_tensors(fn, labels=labels, logits=logits)
    axis = alias(fn, "axis", axis, "dim", dim)
    axis = -1 if axis is None else axis
    check_floating(fn, "logits", logits)
    if logits.dim() == 0 or not isinstance(axis, int) or not -logits.dim() <= axis < logits.dim():
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'axis' ({axis!r}) must be a dimension of 'logits' "
            f"(shape {list(logits.shape)}, at least 1-D)"
        )
    if not broadcasts(labels.shape, logits.shape):
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'labels' (shape {list(labels.shape)}) must have the "
            f"shape of 'logits' ({list(logits.shape)}) or one that broadcasts to it"
        )
    x = logits.float() if logits.dtype in _HALF else logits
    z = labels.to(x.dtype)
    lse = torch.logsumexp(x, axis, keepdim=True)
    loss = (z * (lse - x)).sum(axis)
    # Zero in value; its gradient, softmax * (1 - sum(labels)), turns the loss's own
    # gradient, softmax * sum(labels) - labels, into TensorFlow's softmax - labels.
    surplus = 1 - z.detach().sum(axis, keepdim=True)
    loss = loss + ((lse - lse.detach()) * surplus).sum(axis)
    return loss.to(logits.dtype)


def sparse_softmax_cross_entropy_with_logits(
    labels: torch.Tensor, logits: torch.Tensor, name: str | None = None
) -> torch.Tensor:
    """``-log_softmax(logits)[..., labels]``, as
    ``tf.compat.v1.nn.sparse_softmax_cross_entropy_with_logits``.

    TensorFlow 1 took only keywords (``labels=..., logits=...``); TensorFlow 2.21's
    ``tf.compat.v1`` takes them in this order too, and so does this. On the CPU (and
    outside ``torch.compile``) a label outside ``[0, num_classes)`` raises, as
    TensorFlow's CPU kernel does; elsewhere its loss is NaN, as on TensorFlow's GPU
    (checking would wait for the device). float16 and bfloat16 logits are computed
    in float32.

    Args:
        labels: class indices, int32 or int64, of ``logits``'s shape without its
            last dimension.
        logits: unscaled log-probabilities, ``[..., num_classes]``.
        name: ignored (PyTorch has no graph to name operations in).

    Returns:
        The loss per example: ``labels``'s shape, ``logits``'s dtype.

    Raises:
        TypeError: ``labels`` or ``logits`` is not a tensor.
        ValueError: naming the argument that is malformed, does not fit or (on the
            CPU) holds a label out of range.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
        >>> labels = torch.tensor([0, 1])
        >>> ts.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        tensor([0.1269, 0.6931])
    """
    fn = "sparse_softmax_cross_entropy_with_logits"
    check_tensors(fn, labels=labels, logits=logits)
    if labels.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'labels' must be int32 or int64 class indices, got "
            f"{labels.dtype}"
        )
    check_floating(fn, "logits", logits)
    if logits.dim() == 0 or labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'labels' (shape {list(labels.shape)}) must have the "
            f"shape of 'logits' (shape {list(logits.shape)}, at least 1-D) without its last "
            f"dimension, {list(logits.shape[:-1])}"
        )
    classes = logits.shape[-1]
    valid = (labels >= 0) & (labels < classes)
    if labels.device.type == "cpu" and not torch.compiler.is_compiling():
        bad = labels[~valid]
        if bad.numel():
            raise ValueError(
                f"torchscope.nn.{fn}: argument 'labels' holds {bad[0].item()}, outside the "
                f"valid range [0, {classes}) of class indices ('logits' has {classes} classes in "
                f"its last dimension, shape {list(logits.shape)})"
            )
    x = logits.float() if logits.dtype in _HALF else logits
    index = torch.where(valid, labels, 0).long().unsqueeze(-1)
    loss = torch.logsumexp(x, -1) - x.gather(-1, index).squeeze(-1)
    return torch.where(valid, loss, torch.nan).to(logits.dtype)


def sigmoid_cross_entropy_with_logits(
    labels: torch.Tensor, logits: torch.Tensor, name: str | None = None
) -> torch.Tensor:
    """The logistic loss of each element, as
    ``tf.compat.v1.nn.sigmoid_cross_entropy_with_logits``.

    TensorFlow's stable formula: ``max(x, 0) - x * z + log(1 + exp(-abs(x)))`` for
    logits ``x`` and labels ``z``, with TensorFlow's operations, so that gradients
    (also at ``x == 0``) are TensorFlow's. TensorFlow 1 took only keywords
    (``labels=..., logits=...``); TensorFlow 2.21's ``tf.compat.v1`` takes them in
    this order too, and so does this.

    Args:
        labels: ``logits``'s shape and dtype, values in ``[0, 1]``.
        logits: floating point.
        name: ignored (PyTorch has no graph to name operations in).

    Returns:
        The element-wise loss, of ``logits``'s shape and dtype.

    Raises:
        TypeError: ``labels`` or ``logits`` is not a tensor.
        ValueError: ``labels`` and ``logits`` differ in shape or dtype.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> ts.nn.sigmoid_cross_entropy_with_logits(
        ...     labels=torch.tensor([1.0, 0.0]), logits=torch.tensor([0.0, 100.0])
        ... )
        tensor([  0.6931, 100.0000])
    """
    fn = "sigmoid_cross_entropy_with_logits"
    check_tensors(fn, labels=labels, logits=logits)
    check_floating(fn, "logits", logits)
    if labels.shape != logits.shape or labels.dtype != logits.dtype:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'labels' (shape {list(labels.shape)}, "
            f"{labels.dtype}) must have the shape and dtype of 'logits' (shape "
            f"{list(logits.shape)}, {logits.dtype})"
        )
    zeros = torch.zeros_like(logits)
    positive = logits >= zeros
    relu_logits = torch.where(positive, logits, zeros)
    neg_abs_logits = torch.where(positive, -logits, logits)
    return relu_logits - logits * labels + torch.log1p(torch.exp(neg_abs_logits))
