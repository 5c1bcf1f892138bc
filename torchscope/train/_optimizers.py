"""TensorFlow-1's optimizers (``tf.compat.v1.train``) as ``torch.optim.Optimizer`` subclasses.

Each update rule is TensorFlow's C++ CPU kernel (``tensorflow/core/kernels/training_ops.cc``)
written with the same operations in the same order, and hyperparameters are rounded the way
TensorFlow rounds them (a Python float becomes a float32 tensor, then is cast to the variable's
dtype), so float32 results match TensorFlow's to the last bit where TensorFlow's kernel is
itself exact. How they differ from ``torch.optim``'s counterparts, and by how much, is in
``docs/optimizers.md``.

The state is TensorFlow's: per parameter the slots under TensorFlow's slot names (``m``, ``v``,
``momentum``, ``rms``, ``mg``, ``accumulator``), and for Adam the two beta powers per param group
(see :class:`AdamOptimizer`). ``torchscope.train._slots`` maps them to checkpoint keys.

The learning rate is the group key ``"lr"`` (so ``torch.optim.lr_scheduler`` works); the other
hyperparameters are group keys under their TensorFlow names. Each rule is written once, over
lists of tensors with ``torch._foreach_*`` ops: ``foreach=True`` (and the default ``None``)
runs it once per (device, dtype) bucket, on CPU in cache-sized batches, ``foreach=False`` once
per parameter with lists of one, so the paths share the arithmetic (and its bits).
"""

# torch's _foreach_* ops (what torch.optim runs) are not in torch's __all__.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = [
    "AdagradOptimizer",
    "AdamOptimizer",
    "GradientDescentOptimizer",
    "MomentumOptimizer",
    "RMSPropOptimizer",
]

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]
Tensors = list[torch.Tensor]

# The group keys of Adam's beta powers; also their checkpoint keys (TF's non-slot variables).
BETA_POWERS = ("beta1_power", "beta2_power")

# (significand bits, exponent of the smallest normal) of the dtypes hyperparameters are
# rounded to; float64 variables get float32-rounded values, as TF casts a float32 tensor.
_FORMATS = {torch.float16: (11, -14), torch.bfloat16: (8, -126), torch.float32: (24, -126)}


def _round(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype`` (nearest, ties to even), as a Python float: plain
    ``math`` that ``torch.compile`` folds into a constant."""
    bits, emin = _FORMATS.get(dtype, _FORMATS[torch.float32])
    if value == 0 or not math.isfinite(value):
        return value
    exponent = max(math.frexp(value)[1] - 1, emin) - bits + 1  # exponent of one ulp
    return math.ldexp(round(math.ldexp(value, -exponent)), exponent)


def hyper(value: float, dtype: torch.dtype) -> float:
    """A hyperparameter as TensorFlow's kernel sees it for a ``dtype`` variable: the Python
    float made a float32 tensor, then cast to ``dtype``."""
    value = _round(float(value), torch.float32)
    return value if dtype in (torch.float32, torch.float64) else _round(value, dtype)


# ---------------------------------------------------------------------------- checks


def _check_number(
    who: str, name: str, value: Any, low: float, high: float = math.inf, *, open_high=False
) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: {name} must be a real number, got {value!r}")
    # numbers.Real declares no <=: the number's own comparison runs
    in_range = low <= value < high if open_high else low <= value <= high  # type: ignore[operator]
    if not in_range:  # also refuses NaN
        bounds = f"[{low}, {high})" if open_high else f"[{low}, {high}]"
        if high == math.inf:
            bounds = f">= {low}"
        raise ValueError(f"{who}: {name} must be {bounds}, got {value!r}")


def _check_flag(who: str, name: str, value: Any, allow_none: bool = False) -> None:
    if not (isinstance(value, bool) or (allow_none and value is None)):
        allowed = "True, False or None" if allow_none else "True or False"
        raise TypeError(f"{who}: {name} must be {allowed}, got {value!r}")


# ---------------------------------------------------------------------------- the base


class _TFOptimizer(torch.optim.Optimizer):
    """What the five share: checks, lazy slots, bucketing, and TF's prepare/apply/finish."""

    def __init__(
        self, params: Params, defaults: dict[str, Any], name: str, foreach: bool | None
    ) -> None:
        who = type(self).__name__
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(
                f"{who}: name must be a non-empty string without '/' (it is the suffix of the "
                f"slot variables' names, '<var>/{name}'), got {name!r}"
            )
        _check_flag(who, "foreach", foreach, allow_none=True)
        self.name = name
        super().__init__(params, dict(defaults, foreach=foreach))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self._check_group(group)
            for i, p in enumerate(group["params"]):
                # One that cannot be trained (a store's int64 global_step) is left alone.
                if p.requires_grad and not p.is_floating_point():
                    raise ValueError(
                        f"{type(self).__name__}: parameter {i} of group "
                        f"{len(self.param_groups) - 1} has dtype {p.dtype}; TensorFlow's "
                        "optimizers here take floating parameters (a complex one can be "
                        "trained as torch.view_as_real(param))"
                    )
        except (TypeError, ValueError):
            self.param_groups.pop()
            raise

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)

    # Each optimizer: its hyperparameter checks, slots and rule.
    def _check_group(self, group: dict[str, Any]) -> None:
        _check_number(type(self).__name__, "learning_rate", group["lr"], 0.0)

    def _slot_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The slots, in the order TensorFlow creates them (``<var>/Name``, ``_1``, ``_2``)."""
        return ()

    def _new_slot(self, slot: str, param: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        """A slot's value when TensorFlow creates it (zeros unless overridden)."""
        return torch.zeros_like(param, memory_format=torch.preserve_format)

    def _prepare(self, group: dict[str, Any]) -> Any:
        """Per-step constants shared by the group's buckets (TF's ``_prepare``)."""
        return None

    def _apply_dense(self, group, prepared, params: Tensors, grads: Tensors, slots) -> None:
        raise NotImplementedError

    def _finish(self, group: dict[str, Any], prepared: Any) -> None:
        """After the group's updates (TF's ``_finish``)."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One ``apply_gradients``: updates every parameter that has a gradient.

        Args:
            closure: re-evaluates the model and returns the loss (optional).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            params, grads, slots = self._gather(index, group)
            if not params:
                continue
            prepared = self._prepare(group)
            if group["foreach"] is not False:  # None: foreach (see _batches)
                for bucket in _buckets(params, grads, slots):
                    for batch in _batches(*bucket):
                        self._apply_dense(group, prepared, *batch)
            else:
                for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                    self._apply_dense(group, prepared, [p], [g], [[s[i]] for s in slots])
            self._finish(group, prepared)
        return loss

    def _gather(self, index: int, group: dict[str, Any]):
        names = self._slot_names(group)
        params, grads, slots = [], [], [[] for _ in names]
        for i, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise ValueError(
                    f"{type(self).__name__}: parameter {i} of group {index} has a sparse "
                    "gradient; only dense updates are implemented (TensorFlow's sparse "
                    "IndexedSlices updates are not): use a dense gradient, e.g. "
                    "nn.Embedding(..., sparse=False)"
                )
            state = self.state[p]
            for name, column in zip(names, slots, strict=True):
                if name not in state:
                    state[name] = self._new_slot(name, p, group)
                column.append(state[name])
            params.append(p)
            grads.append(p.grad)
        return params, grads, slots


def _buckets(params: Tensors, grads: Tensors, slots: list[Tensors]):
    """(params, grads, slots) per (device, dtype), for the foreach kernels."""
    found: dict[tuple, list[int]] = {}
    for i, p in enumerate(params):
        found.setdefault((p.device, p.dtype), []).append(i)
    for indices in found.values():
        yield (
            [params[i] for i in indices],
            [grads[i] for i in indices],
            [[column[i] for i in indices] for column in slots],
        )


# On CPU a rule's chain of element-wise passes is bound by memory traffic: it runs faster
# when each pass works on a batch still in cache, about 2**18 elements (small tensors
# together, large ones in slices), than on a whole bucket or one tensor at a time
# (bench/tf_optimizers.py). Element-wise, so the bits are the same either way.
_CPU_BATCH = 1 << 18


def _batches(params: Tensors, grads: Tensors, slots: list[Tensors]):
    """A bucket as it is, or on CPU (eager) in batches of about ``_CPU_BATCH`` elements."""
    if params[0].device.type != "cpu" or torch.compiler.is_compiling():
        yield params, grads, slots
        return
    columns = [params, grads, *slots]
    batch: list[Tensors] = [[] for _ in columns]
    size = 0
    for i, p in enumerate(params):
        tensors = [column[i] for column in columns]
        if p.numel() > _CPU_BATCH and all(t.is_contiguous() for t in tensors):
            pieces = [t.detach().view(-1).split(_CPU_BATCH) for t in tensors]
        else:
            pieces = [[t] for t in tensors]
        for piece in zip(*pieces, strict=True):
            for column, t in zip(batch, piece, strict=True):
                column.append(t)
            size += piece[0].numel()
            if size >= _CPU_BATCH:
                yield batch[0], batch[1], batch[2:]
                batch, size = [[] for _ in columns], 0
    if batch[0]:
        yield batch[0], batch[1], batch[2:]


# ---------------------------------------------------------------------------- the five


class GradientDescentOptimizer(_TFOptimizer):
    """``tf.compat.v1.train.GradientDescentOptimizer``: ``var -= grad * lr``.

    Args:
        params: parameters or param groups, as for any ``torch.optim`` optimizer.
        learning_rate: the step size (>= 0), kept as the group key ``"lr"``.
        name: the name TensorFlow would give the optimizer (it has no slots).
        foreach: ``None`` (default) or ``True`` for the multi-tensor path (on CPU it
            works in batches of about 2**18 elements, which measured faster there than
            whole buckets or the for-loop), ``False`` for one parameter at a time.

    >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    >>> opt = GradientDescentOptimizer([w], learning_rate=0.5)
    >>> w.sum().backward()
    >>> opt.step()
    >>> w.data
    tensor([0.5000, 1.5000])
    """

    def __init__(
        self,
        params: Params,
        learning_rate: float,
        *,
        name: str = "GradientDescent",
        foreach: bool | None = None,
    ) -> None:
        super().__init__(params, {"lr": learning_rate}, name, foreach)

    def _apply_dense(self, group, prepared, params, grads, slots) -> None:
        lr = hyper(group["lr"], params[0].dtype)
        torch._foreach_sub_(params, torch._foreach_mul(grads, lr))


class MomentumOptimizer(_TFOptimizer):
    """``tf.compat.v1.train.MomentumOptimizer``, TensorFlow's ``ApplyMomentum``.

    ``accum = accum * momentum + grad; var -= accum * lr``; with ``use_nesterov``,
    ``var -= grad * lr + accum * momentum * lr``. The slot ``momentum`` starts at zeros, so
    the first step is ``var -= grad * lr`` (``torch.optim.SGD``'s first buffer is ``grad``
    too). Checkpoint key of the slot: ``<var>/Momentum``.

    Args:
        params: parameters or param groups.
        learning_rate: the step size (>= 0), group key ``"lr"``.
        momentum: the accumulator's decay (>= 0).
        use_nesterov: Nesterov's momentum.
        name: the slot names' suffix.
        foreach: as for :class:`GradientDescentOptimizer`.

    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = MomentumOptimizer([w], learning_rate=0.5, momentum=0.5)
    >>> for _ in range(2):
    ...     w.grad = torch.ones(1)
    ...     opt.step()
    >>> w.data, opt.state[w]["momentum"]
    (tensor([-0.2500]), tensor([1.5000]))
    """

    def __init__(
        self,
        params: Params,
        learning_rate: float,
        momentum: float,
        use_nesterov: bool = False,
        *,
        name: str = "Momentum",
        foreach: bool | None = None,
    ) -> None:
        defaults = {"lr": learning_rate, "momentum": momentum, "use_nesterov": use_nesterov}
        super().__init__(params, defaults, name, foreach)

    def _check_group(self, group) -> None:
        super()._check_group(group)
        _check_number(type(self).__name__, "momentum", group["momentum"], 0.0)
        _check_flag(type(self).__name__, "use_nesterov", group["use_nesterov"])

    def _slot_names(self, group) -> tuple[str, ...]:
        return ("momentum",)

    def _apply_dense(self, group, prepared, params, grads, slots) -> None:
        (accum,) = slots
        dtype = params[0].dtype
        lr, momentum = hyper(group["lr"], dtype), hyper(group["momentum"], dtype)
        torch._foreach_mul_(accum, momentum)
        torch._foreach_add_(accum, grads)
        if group["use_nesterov"]:
            update = torch._foreach_mul(grads, lr)
            ahead = torch._foreach_mul(accum, momentum)
            torch._foreach_mul_(ahead, lr)
            torch._foreach_add_(update, ahead)
        else:
            update = torch._foreach_mul(accum, lr)
        torch._foreach_sub_(params, update)


class AdamOptimizer(_TFOptimizer):
    """``tf.compat.v1.train.AdamOptimizer``, TensorFlow's ``ApplyAdam``.

    ``alpha = lr * sqrt(1 - beta2_power) / (1 - beta1_power)``;
    ``m += (grad - m) * (1 - beta1)``; ``v += (grad * grad - v) * (1 - beta2)``;
    ``var -= (m * alpha) / (sqrt(v) + epsilon)``. Epsilon is added to ``sqrt(v)`` without
    bias correction (the paper's "epsilon hat"), unlike ``torch.optim.Adam``.

    ``beta1_power`` and ``beta2_power`` start at ``beta1`` and ``beta2`` and are multiplied
    by them after each step, as float32 scalars. TensorFlow keeps one pair per optimizer, not
    per variable: a variable that skips a step (no gradient) still sees the powers move on,
    and one that gets its first gradient late starts from the current powers. So the pair
    lives in the param group (keys ``"beta1_power"``, ``"beta2_power"``, saved by
    ``state_dict()``), advanced once per ``step()`` in which the group had a gradient; a
    single-group optimizer is exactly TensorFlow's. Checkpoint keys: ``<var>/Adam`` (m),
    ``<var>/Adam_1`` (v), ``beta1_power``, ``beta2_power``.

    Args:
        params: parameters or param groups.
        learning_rate: the step size (>= 0), group key ``"lr"``.
        beta1, beta2: the moments' decays, in [0, 1).
        epsilon: added to ``sqrt(v)`` (>= 0).
        name: the slot names' suffix.
        foreach: as for :class:`GradientDescentOptimizer`.

    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = AdamOptimizer([w], learning_rate=0.1)
    >>> w.grad = torch.tensor([1.0, -2.0])
    >>> opt.step()
    >>> w.data
    tensor([-0.1000,  0.1000])
    >>> opt.param_groups[0]["beta1_power"]
    tensor(0.8100)
    """

    def __init__(
        self,
        params: Params,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        *,
        name: str = "Adam",
        foreach: bool | None = None,
    ) -> None:
        defaults = {"lr": learning_rate, "beta1": beta1, "beta2": beta2, "epsilon": epsilon}
        super().__init__(params, defaults, name, foreach)

    def _check_group(self, group) -> None:
        super()._check_group(group)
        who = type(self).__name__
        _check_number(who, "beta1", group["beta1"], 0.0, 1.0, open_high=True)
        _check_number(who, "beta2", group["beta2"], 0.0, 1.0, open_high=True)
        _check_number(who, "epsilon", group["epsilon"], 0.0)

    def _slot_names(self, group) -> tuple[str, ...]:
        return ("m", "v")

    def beta_powers(self, group: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The group's ``(beta1_power, beta2_power)``, float32 scalars; before the group's
        first step, new ones holding ``(beta1, beta2)``, as TensorFlow creates them."""
        if BETA_POWERS[0] in group:
            return group[BETA_POWERS[0]], group[BETA_POWERS[1]]
        device = group["params"][0].device if group["params"] else None
        beta1, beta2 = (
            torch.tensor(float(group[key]), dtype=torch.float32, device=device)
            for key in ("beta1", "beta2")
        )
        return beta1, beta2

    def _prepare(self, group) -> torch.Tensor:
        """Creates the beta powers if needed, and returns ``alpha`` (float32)."""
        beta1_power, beta2_power = self.beta_powers(group)
        group[BETA_POWERS[0]], group[BETA_POWERS[1]] = beta1_power, beta2_power
        lr = hyper(group["lr"], torch.float32)
        return (lr * torch.sqrt(1 - beta2_power)) / (1 - beta1_power)

    def _apply_dense(self, group, prepared, params, grads, slots) -> None:
        m, v = slots
        dtype, device = params[0].dtype, params[0].device
        alpha = prepared.to(device)
        if dtype != torch.float32:  # TF computes alpha in the variable's dtype
            beta1_power, beta2_power = (b.to(device, dtype) for b in self.beta_powers(group))
            alpha = (hyper(group["lr"], dtype) * torch.sqrt(1 - beta2_power)) / (1 - beta1_power)
        one_minus_beta1 = hyper(1.0 - hyper(group["beta1"], dtype), dtype)
        one_minus_beta2 = hyper(1.0 - hyper(group["beta2"], dtype), dtype)
        # TF's m += (grad - m) * (1 - beta1) is a lerp; fused ops (lerp, addcdiv) round
        # once where TF's kernel rounds twice: an ulp apart at most, one pass less each.
        torch._foreach_lerp_(m, grads, one_minus_beta1)
        torch._foreach_lerp_(v, torch._foreach_mul(grads, grads), one_minus_beta2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, hyper(group["epsilon"], dtype))
        if torch.compiler.is_compiling():  # alpha stays a tensor: no .item() in the graph
            torch._foreach_div_(denom, alpha)
            torch._foreach_addcdiv_(params, m, denom, value=-1.0)
        else:
            torch._foreach_addcdiv_(params, m, denom, value=-alpha.item())

    def _finish(self, group, prepared) -> None:
        beta1_power, beta2_power = self.beta_powers(group)
        beta1_power.mul_(hyper(group["beta1"], torch.float32))
        beta2_power.mul_(hyper(group["beta2"], torch.float32))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """``torch.optim.Optimizer.load_state_dict``, then each group's beta powers moved to
        its first parameter's device (float32), as TensorFlow colocates them."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            if BETA_POWERS[0] in group and group["params"]:
                device = group["params"][0].device
                for key in BETA_POWERS:
                    group[key] = torch.as_tensor(group[key], dtype=torch.float32, device=device)


class RMSPropOptimizer(_TFOptimizer):
    """``tf.compat.v1.train.RMSPropOptimizer``, TensorFlow's ``ApplyRMSProp``.

    ``ms += (grad * grad - ms) * (1 - decay)``;
    ``mom = mom * momentum + (grad * lr) / sqrt(ms + epsilon)``; ``var -= mom``. The slot
    ``rms`` (ms) starts at ONES, ``momentum`` (mom) at zeros. With ``centered``
    (``ApplyCenteredRMSProp``) also ``mg += (grad - mg) * (1 - decay)`` (zeros at first),
    and the root is of ``(ms - mg * mg) + epsilon``. Checkpoint keys: ``<var>/RMSProp`` (ms),
    ``<var>/RMSProp_1`` (mom), or centered ``<var>/RMSProp_1`` (mg), ``<var>/RMSProp_2``
    (mom).

    Args:
        params: parameters or param groups.
        learning_rate: the step size (>= 0), group key ``"lr"``.
        decay: the mean square's decay, in [0, 1].
        momentum: (>= 0).
        epsilon: added under the square root (>= 0).
        centered: divide by an estimate of the variance instead of the mean square.
        name: the slot names' suffix.
        foreach: as for :class:`GradientDescentOptimizer`.

    >>> w = torch.nn.Parameter(torch.zeros(1))
    >>> opt = RMSPropOptimizer([w], learning_rate=0.1, decay=0.5)
    >>> w.grad = torch.tensor([3.0])
    >>> opt.step()
    >>> opt.state[w]["rms"], w.data
    (tensor([5.]), tensor([-0.1342]))
    """

    def __init__(
        self,
        params: Params,
        learning_rate: float,
        decay: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-10,
        centered: bool = False,
        *,
        name: str = "RMSProp",
        foreach: bool | None = None,
    ) -> None:
        defaults = {
            "lr": learning_rate,
            "decay": decay,
            "momentum": momentum,
            "epsilon": epsilon,
            "centered": centered,
        }
        super().__init__(params, defaults, name, foreach)

    def _check_group(self, group) -> None:
        super()._check_group(group)
        who = type(self).__name__
        _check_number(who, "decay", group["decay"], 0.0, 1.0)
        _check_number(who, "momentum", group["momentum"], 0.0)
        _check_number(who, "epsilon", group["epsilon"], 0.0)
        _check_flag(who, "centered", group["centered"])

    def _slot_names(self, group) -> tuple[str, ...]:
        return ("rms", "mg", "momentum") if group["centered"] else ("rms", "momentum")

    def _new_slot(self, slot, param, group) -> torch.Tensor:
        if slot == "rms":
            return torch.ones_like(param, memory_format=torch.preserve_format)
        return super()._new_slot(slot, param, group)

    def _apply_dense(self, group, prepared, params, grads, slots) -> None:
        dtype = params[0].dtype
        one_minus_decay = hyper(1.0 - hyper(group["decay"], dtype), dtype)
        ms, mom = slots[0], slots[-1]
        # ms += (grad * grad - ms) * (1 - decay) is a lerp (one rounding less than TF).
        torch._foreach_lerp_(ms, torch._foreach_mul(grads, grads), one_minus_decay)
        if group["centered"]:
            mg = slots[1]
            torch._foreach_lerp_(mg, grads, one_minus_decay)
            denom = torch._foreach_addcmul(ms, mg, mg, value=-1.0)
            torch._foreach_add_(denom, hyper(group["epsilon"], dtype))
        else:
            denom = torch._foreach_add(ms, hyper(group["epsilon"], dtype))
        torch._foreach_sqrt_(denom)
        momentum = hyper(group["momentum"], dtype)
        if momentum:
            torch._foreach_mul_(mom, momentum)
        else:  # mom * 0 would keep a NaN or inf of the last step; TF's is the new update
            torch._foreach_zero_(mom)
        torch._foreach_addcdiv_(mom, grads, denom, value=hyper(group["lr"], dtype))
        torch._foreach_sub_(params, mom)


class AdagradOptimizer(_TFOptimizer):
    """``tf.compat.v1.train.AdagradOptimizer``, TensorFlow's ``ApplyAdagrad``.

    ``accum += grad * grad; var -= grad * lr * rsqrt(accum)``; the slot ``accumulator``
    starts at ``initial_accumulator_value``. Checkpoint key: ``<var>/Adagrad``.

    Args:
        params: parameters or param groups.
        learning_rate: the step size (>= 0), group key ``"lr"``.
        initial_accumulator_value: the accumulator's start (> 0, as TensorFlow requires).
        name: the slot names' suffix.
        foreach: as for :class:`GradientDescentOptimizer`.

    >>> w = torch.nn.Parameter(torch.zeros(1))
    >>> opt = AdagradOptimizer([w], learning_rate=1.0, initial_accumulator_value=7.0)
    >>> w.grad = torch.tensor([3.0])
    >>> opt.step()
    >>> opt.state[w]["accumulator"], w.data
    (tensor([16.]), tensor([-0.7500]))
    """

    def __init__(
        self,
        params: Params,
        learning_rate: float,
        initial_accumulator_value: float = 0.1,
        *,
        name: str = "Adagrad",
        foreach: bool | None = None,
    ) -> None:
        defaults = {"lr": learning_rate, "initial_accumulator_value": initial_accumulator_value}
        super().__init__(params, defaults, name, foreach)

    def _check_group(self, group) -> None:
        super()._check_group(group)
        value = group["initial_accumulator_value"]
        _check_number(type(self).__name__, "initial_accumulator_value", value, 0.0)
        if value == 0:
            raise ValueError(
                f"{type(self).__name__}: initial_accumulator_value must be positive (the "
                "first step divides by its square root), got 0"
            )

    def _slot_names(self, group) -> tuple[str, ...]:
        return ("accumulator",)

    def _new_slot(self, slot, param, group) -> torch.Tensor:
        value = float(group["initial_accumulator_value"])  # TF: constant_initializer(dtype)
        return torch.full_like(param, value, memory_format=torch.preserve_format)

    def _apply_dense(self, group, prepared, params, grads, slots) -> None:
        (accum,) = slots
        torch._foreach_add_(accum, torch._foreach_mul(grads, grads))
        update = torch._foreach_mul(grads, hyper(group["lr"], params[0].dtype))
        torch._foreach_mul_(update, torch._foreach_rsqrt(accum))
        torch._foreach_sub_(params, update)
