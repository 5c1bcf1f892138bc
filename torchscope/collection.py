"""Collections and losses of the default store, TensorFlow's graph-collection API.

Lists come in creation order; ``scope`` filters by full name with ``re.match``,
as TensorFlow does (so ``"foo"`` also matches ``"foobar/v"``; write ``"foo/"`` for
the scope alone). Regularization losses are computed from the variables' current
values at every call: eager PyTorch has no graph to cache a loss tensor in.
"""

from __future__ import annotations

from typing import Any

import torch

from . import _state
from ._graph_keys import GraphKeys

__all__ = [
    "add_to_collection",
    "apply_constraints",
    "get_collection",
    "global_variables",
    "register_constraint_hook",
    "regularization_loss",
    "regularization_losses",
    "trainable_variables",
]


def get_collection(key: str, scope: str | None = None) -> list[Any]:
    """The items of collection ``key`` in the default store, filtered by ``scope``.

    >>> ts.add_to_collection("activations", 1.0)
    >>> ts.get_collection("activations")
    [1.0]
    """
    context = _state.current()
    return context.store.get_collection(key, scope, context.params)


def add_to_collection(key: str, value: Any) -> None:
    """Appends ``value`` to collection ``key`` of the default store.

    >>> ts.add_to_collection("activations", "relu1")
    >>> ts.get_collection("activations")
    ['relu1']
    """
    _state.current().store.add_to_collection(key, value)


def global_variables(scope: str | None = None) -> list[torch.nn.Parameter]:
    """All variables of the default store (filtered by ``re.match(scope, name)``).

    >>> with ts.variable_scope("enc"):
    ...     _ = ts.get_variable("w", [2])
    >>> [ts.name_of(v) for v in ts.global_variables("enc/")]
    ['enc/w']
    """
    return get_collection(GraphKeys.GLOBAL_VARIABLES, scope)


def trainable_variables(scope: str | None = None) -> list[torch.nn.Parameter]:
    """The trainable variables of the default store (``trainable=False`` ones left out).

    >>> with ts.variable_scope("enc"):
    ...     w = ts.get_variable("w", [2])
    ...     step = ts.get_variable("step", [], trainable=False)
    >>> [ts.name_of(v) for v in ts.trainable_variables()]
    ['enc/w']
    """
    return get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)


def regularization_losses(scope: str | None = None) -> list[torch.Tensor]:
    """Each regularizer applied to its variable's current value, in creation order.

    >>> l2 = lambda v: 0.5 * (v ** 2).sum()
    >>> with ts.variable_scope("dense", regularizer=l2):
    ...     w = ts.get_variable("w", initializer=[1.0, 2.0])
    >>> ts.regularization_losses()
    [tensor(2.5000, grad_fn=<MulBackward0>)]
    """
    return get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)


def regularization_loss(scope: str | None = None) -> torch.Tensor:
    """The sum of :func:`regularization_losses`, always a tensor (as TensorFlow's
    ``add_n``): a zero of the default dtype when there are none, and a regularizer that
    returns a Python number still gives a tensor (default dtype when every loss is one).

    >>> ts.regularization_loss()
    tensor(0.)
    >>> with ts.variable_scope("dense", regularizer=lambda v: v.abs().sum()):
    ...     _ = ts.get_variable("w", initializer=[1.0, -2.0])
    >>> ts.regularization_loss()
    tensor(3., grad_fn=<SumBackward0>)
    """
    losses = regularization_losses(scope)
    if not losses:
        return torch.zeros(())
    total = losses[0]
    for loss in losses[1:]:
        total = total + loss
    if not isinstance(total, torch.Tensor):  # every loss was a Python number
        total = torch.as_tensor(total, dtype=torch.get_default_dtype())
    return total


def apply_constraints(store: Any = None) -> None:
    """Applies every variable's ``constraint`` in place, trainable or not.

    ``store`` is a ``VariableStore`` or a module that has one (``.store``);
    default: the default store. Every result is checked before any variable is written
    (see ``VariableStore.apply_constraints``).

    >>> with ts.variable_scope("c", constraint=lambda v: v.clamp(0, 1)):
    ...     w = ts.get_variable("w", initializer=[-1.0, 0.5, 3.0])
    >>> ts.apply_constraints(); w.data
    tensor([0.0000, 0.5000, 1.0000])
    """
    _resolve(store).apply_constraints()


def register_constraint_hook(optimizer: torch.optim.Optimizer, store: Any = None) -> Any:
    """Makes ``optimizer.step()`` apply, after each step, the constraints of the variables
    of ``store`` that this optimizer updates (those in its ``param_groups`` at that step).

    As in TensorFlow, whose optimizers apply a variable's constraint in their update of
    that variable: the variables of another optimizer (a GAN's other network) and those
    no optimizer holds (``trainable=False``) are left alone. ``ts.apply_constraints()``
    applies them all. Returns the hook handle (``handle.remove()`` undoes it).

    >>> w = ts.get_variable("w", initializer=[0.5, -0.5], constraint=lambda v: v.clamp(min=0))
    >>> opt = torch.optim.SGD([w], lr=1.0)
    >>> handle = ts.register_constraint_hook(opt)
    >>> w.sum().backward(); opt.step()
    >>> w.detach()
    tensor([0., 0.])
    >>> handle.remove()
    """
    target = _resolve(store)

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        updated = {id(p) for group in opt.param_groups for p in group["params"]}
        target._apply_constraints(updated)

    return optimizer.register_step_post_hook(hook)


def _resolve(store: Any) -> Any:
    from .store import VariableStore

    if store is None:
        return _state.current().store
    if isinstance(store, VariableStore):
        return store
    inner = getattr(store, "store", None)
    if isinstance(inner, VariableStore):
        return inner
    raise TypeError(
        f"store must be a ts.VariableStore or a module with a .store, got {type(store).__name__}"
    )
