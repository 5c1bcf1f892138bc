"""A ``ScopedModule``'s creation policy, and fitting checkpoint values to its first call.

The store of a ``ScopedModule`` holds a :class:`Policy` (``store.policy``), which the
lookup engine consults when ``get_variable`` would create a variable: before the first
call ends, new variables get the conversions the module was given (``.to()``,
``.double()``: a :class:`Conversion`); after it, nothing is created.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ._checks import check_dtype, check_shape, shapes_compatible

__all__ = ["Conversion", "Policy", "fit_loaded"]


def fit_loaded(
    name: str, param: nn.Parameter, request: dict[str, Any], policy: Any, source: str
) -> None:
    """A variable made from a checkpoint before the first call, fitted to what the
    ``get_variable`` call that claims it asks for: the same shape (else an error naming
    ``source``, where the value came from: the state dict key, or the checkpoint variable),
    and the dtype a variable made by that call would have (the value cast in place, as a
    later load would cast it). The shape asked for is ``shape``, else that of a value
    given as initializer."""
    initializer = request.get("initializer")
    shape = check_shape(request.get("shape"), name)
    if shape is None and isinstance(initializer, torch.Tensor):
        shape = tuple(initializer.shape)
    if shape is not None and not shapes_compatible(shape, param.shape):
        asked = tuple("None" if d is None else d for d in shape)
        raise ValueError(
            f"variable {name!r}: its value came from {source}, before the first call, and "
            f"has shape {tuple(param.shape)}, but the code asks for shape {asked}. Load "
            "values of that shape before the first call (loading again replaces them), or "
            "call the module first and then load (load_state_dict() then names every key "
            "that does not fit)."
        )
    dtype = check_dtype(request.get("dtype"), name)
    if dtype is None:
        dtype = (
            initializer.dtype
            if isinstance(initializer, torch.Tensor)
            else torch.get_default_dtype()
        )
    conversion = policy.conversion if policy is not None else None
    if conversion is not None:
        dtype = conversion.table.get(dtype, (dtype, None))[0]
    if param.dtype != dtype:
        with torch.no_grad():
            if not (dtype.is_floating_point or dtype.is_complex):
                param.requires_grad_(False)
            param.data = param.data.to(dtype)


class Policy:
    """A ScopedModule's creation policy (``VariableStore.policy``): until the first call
    ends, new variables get the module's conversions (``.to()``, ``.double()``); after it,
    nothing is created (``frozen``); and what ``torch.nn.utils.prune`` or ``parametrize``
    put in the place of a variable is found on the module."""

    __slots__ = ("_module", "_frozen", "conversion")

    def __init__(
        self,
        module: nn.Module,
        frozen: str | None = None,
        conversion: Conversion | None = None,
    ) -> None:
        self._module = weakref.ref(module)
        self._frozen = frozen
        self.conversion: Conversion | None = conversion

    @property
    def frozen(self) -> str | None:
        return self._frozen

    def freeze(self, who: str) -> None:
        self._frozen = who
        self.conversion = None  # built: later conversions act on the variables themselves

    def computed(self, name: str) -> torch.Tensor | None:
        """The tensor the module computes in the place of its variable ``name``, if any:
        ``torch.nn.utils.prune`` and ``torch.nn.utils.parametrize`` take a parameter out of
        the module's dict and put an attribute (prune) or a property (parametrize) of the
        same name in its place, which nn.Module code reads as ``self.weight``."""
        if self._frozen is None:
            return None
        module = self._module()
        if module is None:
            return None
        try:
            value = getattr(module, name)
        except AttributeError:
            return None
        return value if isinstance(value, torch.Tensor) else None

    def convert(self, param: nn.Parameter) -> nn.Parameter:
        conversion = self.conversion
        return param if conversion is None else conversion.apply(param)


# The dtypes a conversion is worked out for (what get_variable makes).
_DTYPES = (
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.complex128,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
)


class Conversion:
    """What ``.to()``, ``.double()``, ``.half()``, ``.cuda()``... did to a ScopedModule
    before its first call, for the variables that call will make: for each dtype, the
    dtype and device a tensor of that dtype ends up with (device None: where it was
    made). Worked out by running each conversion on empty tensors, so it is plain data
    that pickles and copies with the module.

    >>> c = Conversion(); c.then(lambda t: t.double() if t.is_floating_point() else t)
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> step = torch.nn.Parameter(torch.ones(2, dtype=torch.int64), requires_grad=False)
    >>> c.apply(w).dtype, c.apply(step).dtype
    (torch.float64, torch.int64)
    """

    __slots__ = ("table",)

    def __init__(self) -> None:
        self.table: dict[torch.dtype, tuple[torch.dtype, torch.device | None]] = {}

    def then(self, fn: Callable[[torch.Tensor], Any]) -> None:
        """Adds ``fn`` (what ``nn.Module._apply`` runs on each tensor) after the others."""
        table = {}
        for dtype in _DTYPES:
            before, device = self.table.get(dtype, (dtype, None))
            probe = torch.empty(0, dtype=before, device="cpu" if device is None else device)
            out = fn(probe)
            if not isinstance(out, torch.Tensor):
                out = probe
            moved = device is not None or out.device != probe.device
            table[dtype] = (out.dtype, out.device if moved else None)
        self.table = table

    def apply(self, param: nn.Parameter) -> nn.Parameter:
        """``param`` converted (the same object when nothing changes)."""
        dtype, device = self.table.get(param.dtype, (param.dtype, None))
        if dtype == param.dtype and (device is None or device == param.device):
            return param
        with torch.no_grad():
            value = param.detach().to(
                device=param.device if device is None else device, dtype=dtype
            )
        grad = param.requires_grad and (value.is_floating_point() or value.is_complex())
        return nn.Parameter(value, requires_grad=grad)
