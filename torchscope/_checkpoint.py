"""``ts.checkpoint``: activation checkpointing for code that uses ``get_variable``.

``torch.utils.checkpoint.checkpoint`` runs the function again during backward to
recompute what it did not keep. That second run happens wherever backward runs:
outside the ``ScopedModule`` call or ``as_default()`` block, and outside the
variable scopes, that were open when the function first ran, so ``get_variable``
would look in the wrong store under the wrong names. ``ts.checkpoint`` remembers
that scope state when the function runs and puts it back, as it was then, for the
recomputation: the same store, the same scope (reusing: the recomputation asks for
the variables the forward made or found), the same name scope and the same counters
(``default_name`` scopes get the same names again).

Creating a variable while backward runs is refused with an error saying this (see
``_lookup.py``), so a function checkpointed with torch's own ``checkpoint`` fails
loudly rather than recomputing with new variables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.utils.checkpoint
from torch.compiler import is_compiling

from . import _context
from ._types import AUTO_REUSE, R

__all__ = ["checkpoint"]

# torch.utils.checkpoint.checkpoint's own keywords (the others go to the function).
_CHECKPOINT_KEYWORDS = ("preserve_rng_state", "context_fn", "determinism_check", "debug")


def checkpoint(
    function: Callable[..., R], *args: Any, use_reentrant: bool = False, **kwargs: Any
) -> R:
    """``torch.utils.checkpoint.checkpoint(function, *args, ...)`` for scoped code.

    Args:
        function: what to run and recompute in backward; it may open scopes and call
            ``get_variable``.
        args, kwargs: its arguments, and ``torch.utils.checkpoint.checkpoint``'s own
            keywords (``preserve_rng_state``, ``context_fn``, ...).
        use_reentrant: as for ``torch.utils.checkpoint.checkpoint`` (default False,
            which PyTorch recommends).

    Under ``torch.compile`` the function is called as it is, without checkpointing:
    dynamo refuses the scope changes inside a checkpointed region, and the compiler
    plans what to keep for backward itself.

    >>> def block(x):
    ...     with ts.variable_scope("block"):
    ...         return torch.tanh(x @ ts.get_variable("w", [2, 2]))
    >>> net = ts.ScopedModule(lambda x: ts.checkpoint(block, x).sum(), name="net")
    >>> net(torch.ones(1, 2, requires_grad=True)).backward()
    >>> [n for n, p in net.named_parameters() if p.grad is not None]
    ['net/block/w']
    """
    if is_compiling():
        own = {k: kwargs.pop(k) for k in _CHECKPOINT_KEYWORDS if k in kwargs}
        del own
        return function(*args, **kwargs)
    context = _context.current()
    # The scope state the forward runs in, with copies of its counters, to replay.
    saved = context.copy(context.scope)
    runs = [0]

    def run(*inner_args: Any, **inner_kwargs: Any) -> R:
        runs[0] += 1
        if runs[0] == 1:  # the forward: in the caller's own context, as an ordinary call
            return function(*inner_args, **inner_kwargs)
        # The recomputation reuses what the forward made (on a ScopedModule's first call,
        # the forward created them): the scope as it was, reusing.
        scope = saved.scope
        replay = saved.copy(scope._copy(AUTO_REUSE, scope._name, scope._name_scope))
        previous = _context.push(replay)
        try:
            return function(*inner_args, **inner_kwargs)
        finally:
            _context.pop(replay, previous)

    return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=use_reentrant, **kwargs)
