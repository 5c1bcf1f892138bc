"""``tf.compat.v1.layers`` for ported code: TensorFlow's layer functions, variable names,
defaults and numbers, built on ``ts.get_variable`` and ``ts.variable_scope``.

Each call makes its variables in a variable scope of its own, named as TensorFlow names
it: ``name`` when given (as it is: calling a layer of that name again needs
``reuse=True`` or ``ts.AUTO_REUSE``, or a reusing enclosing scope); otherwise the layer's
kind made unique as TensorFlow makes it, against the full names of the scopes opened
(``dense``, ``dense_1``, ...; an unnamed layer with ``reuse=True`` takes ``dense`` itself). What
was opened below a scope is forgotten when it closes, so a model that re-enters its scope
with reuse, a ``ts.ScopedModule`` (every call starts at a fresh root) and a
``ts.make_template`` give their layers the names of their first call on every call, and
reuse those variables. Layers work wherever ``get_variable`` does, and honour the
enclosing scope's initializer (for kernels left at ``kernel_initializer=None``),
regularizer, dtype, device and custom getter.

>>> def net(x):
...     h = ts.layers.dense(x, 8, activation=torch.relu)
...     return ts.layers.dense(h, 2)
>>> model = ts.ScopedModule(net)
>>> y = model(torch.ones(4, 3)); y = model(torch.ones(4, 3))  # the second call reuses
>>> list(model.store)
['dense/kernel', 'dense/bias', 'dense_1/kernel', 'dense_1/bias']

Porting notes:

- Batch normalization updates its moving averages in the forward, in training mode.
  TensorFlow's ``UPDATE_OPS`` and the ``control_dependencies`` around a train op have
  nothing left to do; ``ts.get_collection(ts.GraphKeys.UPDATE_OPS)`` stays empty, so a
  ported ``with`` or ``tf.group`` over it does nothing.
- Regularizers: a variable's losses (the enclosing scope's regularizer plus the layer's
  own, as one loss) are in ``ts.regularization_losses()``, computed from the current
  values. An activity regularizer's loss (over the batch size, as in TensorFlow) is put
  into ``REGULARIZATION_LOSSES`` by each call, in the place of the same layer scope's loss
  from the call before, so the collection holds the latest forward's loss, not one per
  step; a layer scope called twice in one forward keeps the later call's loss only.
- Constraints are kept with the variable; ``ts.apply_constraints()`` (or an optimizer
  hooked with ``ts.register_constraint_hook``) applies them after a step, as TensorFlow's
  optimizers do.
- Layers in eager PyTorch run on every step: build them inside a ``ts.ScopedModule``, a
  template, or a scope entered with ``reuse=ts.AUTO_REUSE``, not at the root on every
  step (which would make ``dense_1``, ``dense_2``, ... as TensorFlow would for a graph
  built twice).
"""

from __future__ import annotations

from ._conv import conv2d, conv2d_transpose
from ._core import dense, dropout, flatten
from ._normalization import batch_normalization
from ._pool import average_pooling2d, max_pooling2d

__all__ = [
    "average_pooling2d",
    "batch_normalization",
    "conv2d",
    "conv2d_transpose",
    "dense",
    "dropout",
    "flatten",
    "max_pooling2d",
]
