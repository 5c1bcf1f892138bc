"""``v.name``: TensorFlow's name (``"scope/v:0"``) on the variables ``get_variable`` makes.

A store keeps each variable's full name on the tensor (one attribute, set when the store
takes the variable; a store never renames one), and ``nn.Parameter`` gets a ``name``
property that reads it. The variables stay plain ``nn.Parameter`` objects: a subclass
would have cost every step, measured: each op on a Parameter subclass looks up its
``__torch_function__`` (an eager training step of a 4-layer MLP 3% slower), and
``torch.compile`` guards and wraps each subclass input (one more guard per variable, a
compiled call 4% slower). For a Parameter without the attribute (not made by
``get_variable``) ``name`` is what it was, PyTorch's ``Tensor.name`` (``None``).

What PyTorch makes from a variable keeps the name where it keeps the tensor's attributes
(pickling, ``torch.save``/``torch.load``), and the stores put it back where PyTorch drops
it (``copy.deepcopy`` of a store or module, and the new Parameters ``nn.Module._apply``
may make in ``.to()``/``.cuda()``). What PyTorch makes in a variable's place has no name:
FSDP2's ``fully_shard`` (DTensor parameters), data-parallel replicas, a bare
``copy.deepcopy(v)``, ``functional_call`` substitutes; ``ts.name_of`` finds those held
by a store (FSDP2's in a ``ScopedModule``), and ``named_parameters()`` names them all.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["NAME_ATTR", "name_variable"]

NAME_ATTR = "_torchscope_name"  # the attribute a variable's full name is kept in

_TENSOR_NAME: Any = torch._C.TensorBase.__dict__["name"]  # PyTorch's own getter (None)


def _name(self: torch.Tensor) -> Any:
    # getattr, not self.__dict__: torch.compile traces getattr on a tensor.
    full = getattr(self, NAME_ATTR, None)
    if full is None:
        return _TENSOR_NAME.__get__(self)
    return full + ":0"


def name_variable(param: torch.Tensor, name: str) -> None:
    """Keeps ``name`` on ``param``: ``param.name`` is then ``name + ":0"``."""
    setattr(param, NAME_ATTR, name)


_name.__doc__ = (
    'The variable\'s TensorFlow name, "scope/v:0" (ts.name_of(v) is "scope/v"), for a '
    "Parameter made by ts.get_variable; else PyTorch's Tensor.name (None)."
)
if not isinstance(nn.Parameter.__dict__.get("name"), property):
    nn.Parameter.name = property(_name)  # type: ignore[assignment,method-assign]
