"""TensorFlow-signature neural-network functions, for ported ``tf.nn`` code.

Each takes the arguments of its ``tf.compat.v1.nn`` namesake (TensorFlow 2's
spellings too, as keywords: ``input``/``value``, ``filters``/``filter``,
``rate``/``keep_prob``, ...; ``name=`` is accepted and ignored) and gives
TensorFlow's numbers, checked against files made with TensorFlow. Filters are in
TensorFlow's layouts (``conv2d``: HWIO, ``[height, width, in_channels,
out_channels]``; ``conv2d_transpose``: ``[height, width, out_channels,
in_channels]``; ``depthwise_conv2d``: ``[height, width, in_channels,
channel_multiplier]``), data in ``"NHWC"`` (the default, also spelled ``None``) or
``"NCHW"``, ``strides``/``dilations``/``ksize`` an int or a list of 1, 2 or 4 ints
(numpy integers too), and ``padding`` ``"SAME"`` (with TensorFlow's split: for an
odd total the extra row/column goes at the bottom/right; an empty input dimension
gives an empty output), ``"VALID"`` or, where TensorFlow takes it, an explicit list
of ``[before, after]`` pairs per dimension. ``conv2d_bias_relu`` runs the fused op
of :mod:`torchscope.ops`. Errors are ``ValueError`` naming TensorFlow's argument
(``input``, ``filter``, ``bias``, ...) with the shapes as they were passed, and
``TypeError`` naming it when it is not a tensor (None, a list).

One job per module: ``_args`` (TensorFlow's argument conventions, read once),
``_conv`` (``conv2d``, ``conv2d_bias_relu``, ``depthwise_conv2d``),
``_conv_transpose``, ``_pool`` (``max_pool``, ``avg_pool``), ``_elementwise``
(``bias_add``, ``relu``, ``dropout``), ``_norm`` (``moments``,
``batch_normalization``, ``fused_batch_norm``) and ``_losses``.

>>> images = torch.ones(1, 4, 4, 3)                      # NHWC
>>> kernel = torch.ones(3, 3, 3, 8)                      # HWIO
>>> ts.nn.conv2d_bias_relu(images, kernel, torch.zeros(8), [1, 2, 2, 1], "SAME").shape
torch.Size([1, 2, 2, 8])
"""

from ._conv import conv2d, conv2d_bias_relu, depthwise_conv2d
from ._conv_transpose import conv2d_transpose
from ._elementwise import bias_add, dropout, relu
from ._losses import (
    l2_loss,
    sigmoid_cross_entropy_with_logits,
    softmax_cross_entropy_with_logits_v2,
    sparse_softmax_cross_entropy_with_logits,
)
from ._norm import batch_normalization, fused_batch_norm, moments
from ._pool import avg_pool, max_pool

__all__ = [
    "avg_pool",
    "batch_normalization",
    "bias_add",
    "conv2d",
    "conv2d_bias_relu",
    "conv2d_transpose",
    "depthwise_conv2d",
    "dropout",
    "fused_batch_norm",
    "l2_loss",
    "max_pool",
    "moments",
    "relu",
    "sigmoid_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_v2",
    "sparse_softmax_cross_entropy_with_logits",
]
