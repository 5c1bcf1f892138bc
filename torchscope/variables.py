"""``get_variable``: the call made on every forward pass.

The reuse path (the scope reuses, no custom getter, no dtype to check) is one
dict lookup and a shape comparison. Everything else (defaults inherited from the
scope, the custom-getter chain, creation) goes through :func:`_get_variable`,
which ends in the store's real getter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from . import _state
from ._create import check_value_dtype
from ._fastpath import same_shape as _same_shape
from ._state import _THREAD, DEFAULT
from ._variable_scope import TENSORFLOW_GETTER_KEYWORDS, call_getter
from .scopes import VariableScope
from .summary import _Uses

__all__ = ["get_variable"]


def get_variable(
    name: str,
    shape: Any = None,
    dtype: torch.dtype | str | None = None,
    initializer: Any = None,
    regularizer: Callable | None = None,
    trainable: bool | None = True,
    device: torch.device | str | None = None,
    constraint: Callable | None = None,
) -> torch.nn.Parameter:
    """Gets an existing variable or creates a new one, by full name.

    The full name is the current variable scope's name, ``/``, and ``name``. If
    the scope reuses (``reuse=True``), the existing variable is returned (the same
    object), and ValueError is raised if there is none. If it does not reuse, a
    new variable is created, and ValueError is raised if the name is taken. With
    ``ts.AUTO_REUSE`` it is created if missing and returned otherwise. On reuse a
    given ``shape`` (``None`` dims match anything) and dtype must match.

    Args:
        name: the name relative to the current scope.
        shape: the shape; may be omitted on reuse, or when ``initializer`` is a value.
        dtype: default: the scope's dtype, else ``torch.get_default_dtype()``.
        initializer: ``init(shape, dtype=None, device=None)`` (or an initializer class,
            made with no arguments), or a tensor, number or nested list. With an explicit
            ``dtype``, a tensor (or array) must have that dtype, and numbers must fit it
            without losing values (ValueError otherwise). Default: the scope's, else
            Glorot-uniform (zeros for integer and bool dtypes).
        regularizer: ``fn(variable) -> loss``; see ``ts.regularization_losses()``.
        trainable: ``False`` makes a Parameter with ``requires_grad=False``.
        device: default: the scope's, else ``torch.get_default_device()``.
        constraint: ``fn(variable) -> projected``; see ``ts.apply_constraints()``.

    >>> with ts.variable_scope("foo"):
    ...     v = ts.get_variable("v", [1])
    >>> with ts.variable_scope("foo", reuse=True):
    ...     v1 = ts.get_variable("v", [1])
    >>> v1 is v, ts.name_of(v)
    (True, 'foo/v')
    """
    context = _THREAD.slot[0]  # current(), inlined: this runs on every forward call
    if context.store is None:
        context = DEFAULT[0]._local.context
    scope = context.scope
    if scope._fast and dtype is None:
        try:
            found = context.params.get(scope._prefix + name)
        except TypeError:
            raise TypeError(
                f"get_variable's name must be a str, got {type(name).__name__}: {name!r}"
            ) from None
        if found is not None and (shape is None or _same_shape(found, shape)):
            return found
    return _get_variable(
        context,
        scope,
        name,
        shape,
        dtype,
        initializer,
        regularizer,
        trainable,
        device,
        constraint,
        fast_path_tried=True,
    )


def _get_variable(
    context: _state.Context,
    scope: VariableScope,
    name: str,
    shape: Any = None,
    dtype: Any = None,
    initializer: Any = None,
    regularizer: Callable | None = None,
    trainable: bool | None = True,
    device: Any = None,
    constraint: Callable | None = None,
    *,
    fast_path_tried: bool = False,
) -> Any:
    """``get_variable`` with the scope's defaults applied and its custom getter run."""
    if not isinstance(name, str):
        raise TypeError(f"get_variable's name must be a str, got {type(name).__name__}: {name!r}")
    full_name = scope._prefix + name
    if dtype is not None and initializer is not None and not callable(initializer):
        _check_value_dtype(context, scope, full_name, initializer, dtype)
    # get_variable's reuse path read this name from the context's dict, which counted it
    # if it is ts.summary's counting dict (_Uses) and held the name.
    counted_on_reuse_path = fast_path_tried and scope._fast and dtype is None
    if dtype is None:
        dtype = scope._dtype
    if initializer is None:
        initializer = scope._initializer
    if regularizer is None:
        regularizer = scope._regularizer
    if device is None:
        device = scope._device
    if constraint is None:
        constraint = scope._constraint
    getter = scope._custom_getter
    if getter is None:
        variable = context.store._get_or_create(
            context.params,
            full_name,
            shape,
            dtype,
            initializer,
            regularizer,
            scope._reuse,
            trainable,
            constraint=constraint,
            device=device,
        )
    else:
        # TensorFlow's keywords, all of them; device and constraint only to a getter that
        # takes them (the real getter has them bound, so they apply either way).
        real_getter = functools.partial(
            context.store._get_or_create, context.params, device=device, constraint=constraint
        )
        variable = call_getter(
            getter,
            getter=real_getter,
            name=full_name,
            shape=shape,
            dtype=dtype,
            initializer=initializer,
            regularizer=regularizer,
            reuse=scope._reuse,
            trainable=trainable,
            **TENSORFLOW_GETTER_KEYWORDS,
            device=device,
            constraint=constraint,
        )
    params = context.params
    if type(params) is _Uses and not (counted_on_reuse_path and full_name in params):
        params.uses[id(variable)] += 1
    return variable


def _check_value_dtype(
    context: _state.Context, scope: VariableScope, full_name: str, value: Any, dtype: Any
) -> None:
    """TensorFlow's check of a value initializer against an explicit ``dtype``, made as
    TensorFlow makes it: before the scope's defaults apply and the custom getters run.
    Only for a variable that will be created: on reuse the initializer is ignored."""
    reuse = scope._reuse
    if reuse is True or (reuse and dict.get(context.params, full_name) is not None):
        return
    check_value_dtype(full_name, value, dtype)
