"""TensorFlow-1 initializers: picklable callables ``init(shape, dtype=None, device=None)``.

Semantics and defaults are ``tf.compat.v1``'s, and fans follow TensorFlow's layout (see
:func:`compute_fans`). With ``seed`` the values are the same on every call (drawn from a
private CPU generator, then moved, so every device gets the same numbers); without one they
come from torch's global generator, so ``torch.manual_seed`` makes a run repeatable, unless
the variable's store has a seed (``ts.set_seed``): then an initializer without a seed of its
own draws from generators keyed by (store seed, variable name) (see ``_keyed``).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch

from . import _keyed
from ._checks import check_defined_shape
from ._types import DeviceLike, ValueLike
from ._values import check_fits, exact

_DOES_NOT_FIT = (
    "constant_initializer value {value!r} does not fit {dtype}: {example!r} would become "
    "{converted!r}. Give values that dtype holds, or another dtype."
)

# scipy.stats.truncnorm.std(a=-2, b=2, loc=0.0, scale=1.0), as in TensorFlow.
_TRUNCNORM_STD = 0.87962566103423978
_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("normal", "truncated_normal", "untruncated_normal", "uniform")


# ---------------------------------------------------------------------------- checks


def _resolve(
    shape: Any, dtype: Any, device: DeviceLike | None
) -> tuple[tuple[int, ...], torch.dtype, torch.device]:
    dims = check_defined_shape(shape)
    if dtype is None:
        dtype = torch.get_default_dtype()
    elif not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype or None, got {dtype!r}")
    device = torch.get_default_device() if device is None else torch.device(device)
    return dims, dtype, device


def _check_real(name: str, value: Any, minimum: float | None = None) -> float:
    if type(value) is float or type(value) is int:  # the common case: no ABC check
        if minimum is not None and not value >= minimum:  # `not >=` also rejects NaN
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    # `not >=` also rejects NaN (numbers.Real declares no >=: the number's own one runs)
    if minimum is not None and not value >= minimum:  # type: ignore[operator]
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return float(value)


def _check_seed(seed: Any) -> int | None:
    if seed is None or type(seed) is int:
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    return int(seed)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def _is_integer(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _check_floating(who: str, dtype: torch.dtype) -> None:
    if not dtype.is_floating_point:
        raise ValueError(f"{who} needs a floating dtype (float16/bfloat16/32/64), got {dtype}")


# ---------------------------------------------------------------------------- sampling


def _rng(seed: int | None, device: torch.device):
    """(generator, device to sample on): seeded draws happen on CPU and are moved after."""
    if seed is None:
        return None, device
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed & 0xFFFF_FFFF_FFFF_FFFF)
    return gen, torch.device("cpu")


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _truncated_normal(dims, mean, stddev, dtype, device, seed) -> torch.Tensor:
    """Normal draws with every value beyond 2 standard deviations drawn again (as TF)."""
    gen, where = _rng(seed, device)
    return _keyed.truncated(dims, mean, stddev, dtype, where, gen).to(device)


def _normal(dims, mean, stddev, dtype, device, seed) -> torch.Tensor:
    gen, where = _rng(seed, device)
    return (
        torch.empty(dims, dtype=dtype, device=where).normal_(mean, stddev, generator=gen).to(device)
    )


def _uniform(dims, low, high, dtype, device, seed) -> torch.Tensor:
    gen, where = _rng(seed, device)
    return (
        torch.empty(dims, dtype=dtype, device=where).uniform_(low, high, generator=gen).to(device)
    )


def _integers(dims, low, high, dtype, device, seed) -> torch.Tensor:
    gen, where = _rng(seed, device)
    x = torch.randint(int(low), int(high), dims, generator=gen, dtype=dtype, device=where)
    return x.to(device)


# What each kind of draw is: unkeyed on the device (or a seed of its own), and the fill of
# one keyed chunk, ``fill(n, generator) -> 1-D CPU tensor``.
_DRAWS = {
    "uniform": _uniform,
    "normal": _normal,
    "truncated_normal": _truncated_normal,
    "integers": _integers,
}
_CPU = torch.device("cpu")


# ---------------------------------------------------------------------------- fans


def compute_fans(shape: Sequence[int]) -> tuple[float, float]:
    """Fan-in and fan-out of a weight shape, in TensorFlow's layout convention.

    A scalar gives ``(1, 1)``, a vector ``(n, n)``, a matrix ``[in, out]`` gives
    ``(in, out)``; with more dimensions the leading ones are the receptive field, so an
    HWIO filter ``[h, w, in, out]`` gives ``(h*w*in, h*w*out)``. (PyTorch's ``nn.init``
    reads ``[out, in, *kernel]`` instead.)

    >>> compute_fans([5, 5, 32, 64])
    (800.0, 1600.0)
    >>> compute_fans([300, 100])
    (300.0, 100.0)
    """
    dims = check_defined_shape(shape)
    if not dims:
        return 1.0, 1.0
    if len(dims) == 1:
        return float(dims[0]), float(dims[0])
    receptive_field = math.prod(dims[:-2])
    return float(dims[-2] * receptive_field), float(dims[-1] * receptive_field)


# ---------------------------------------------------------------------------- classes


class Initializer:
    """Base class: ``__call__`` checks its arguments, subclasses implement ``_generate``.

    ``_name`` is the public name and ``_fields`` the constructor arguments that ``repr``
    shows.
    """

    _name = "initializer"
    _fields: tuple[str, ...] = ()

    def __call__(
        self,
        shape: Sequence[int],
        dtype: torch.dtype | None = None,
        device: DeviceLike | None = None,
        *,
        partition_info: Any = None,
    ) -> torch.Tensor:
        """Returns a new tensor of ``shape`` (default dtype and device when ``None``).

        ``partition_info`` is accepted, and ignored, so that ported code calling
        TensorFlow's ``init(shape, dtype, partition_info=None)`` runs unchanged.

        >>> ones_initializer()([2], dtype=torch.float32, partition_info=None)
        tensor([1., 1.])
        """
        return self._generate(*_resolve(shape, dtype, device))

    def _generate(self, dims: tuple[int, ...], dtype: torch.dtype, device: torch.device):
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"{self._name}({args})"


class Elementwise(Initializer):
    """A random initializer whose elements are drawn independently from one distribution.

    Subclasses say which (``_spec``). Under a store seed, and without a seed of their own,
    the values come in keyed chunks (``_keyed``), so :meth:`flat` can make any slice of
    the flattened tensor alone, equal to that slice of the whole.
    """

    seed: int | None = None

    def _spec(self, dims, dtype) -> tuple[str, float, float]:
        """(kind of draw, first and second parameter), after the checks."""
        raise NotImplementedError

    def _generate(self, dims, dtype, device):
        kind, a, b = self._spec(dims, dtype)
        key = _keyed.active() if self.seed is None else None
        if key is None:
            return _DRAWS[kind](dims, a, b, dtype, device, self.seed)
        if device.type == "meta":  # no values to make
            return torch.empty(dims, dtype=dtype, device=device)
        numel = math.prod(dims)
        values = _keyed.draw(_keyed.fill(kind, a, b, dtype), numel, key, 0, numel, dims)
        if values.shape != dims:
            values = values.reshape(dims)
        return values if device.type == "cpu" else values.to(device)

    def flat(
        self, dims: tuple[int, ...], dtype: torch.dtype, start: int, stop: int, key: _keyed.Key
    ) -> torch.Tensor:
        """Elements ``[start, stop)`` of the flattened value this initializer makes for the
        variable ``key`` names (a 1-D CPU tensor), without making the rest.

        >>> init = random_normal_initializer()
        >>> with _keyed.drawing((0, "w")):
        ...     whole = init((4, 3))
        >>> torch.equal(init.flat((4, 3), torch.float32, 3, 9, (0, "w")), whole.flatten()[3:9])
        True
        """
        kind, a, b = self._spec(dims, dtype)
        return _keyed.draw(_keyed.fill(kind, a, b, dtype), math.prod(dims), key, start, stop)


_PLAIN_SCALARS = frozenset((int, float, bool))


class Constant(Initializer):
    """Fills with ``value``: a scalar, or as many values as the shape has elements.

    A nested list, tensor or array with as many elements as ``shape`` is reshaped to it;
    any other size is a ``ValueError`` (TF-1 silently repeated the last value instead).

    >>> constant_initializer([[1, 2], [3, 4]])((4,), dtype=torch.int32)
    tensor([1, 2, 3, 4], dtype=torch.int32)
    >>> constant_initializer(0.5)((2, 2))
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000]])
    """

    _name = "constant_initializer"
    _fields = ("value",)
    value: ValueLike

    def __init__(self, value: ValueLike = 0) -> None:
        if type(value) in _PLAIN_SCALARS:  # the common case, built inside a forward
            self.value = value
            return
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().clone()
        elif isinstance(value, (list, tuple)) or hasattr(value, "__array__"):
            value = copy.deepcopy(value)  # later edits of the caller's list do not leak in
        elif not isinstance(value, (numbers.Number, list, tuple)) and not hasattr(
            value, "__array__"
        ):
            raise TypeError(
                "constant_initializer value must be a number, a (nested) list or tuple, a "
                f"tensor or an array, got {type(value).__name__}"
            )
        if not isinstance(value, numbers.Number):  # a scalar is rectangular; skip the tensor
            try:
                exact(value)
            except (TypeError, ValueError, RuntimeError) as e:
                raise ValueError(
                    f"constant_initializer value is not a rectangular array: {e}"
                ) from e
        self.value = value

    def _source(self, dtype: torch.dtype) -> torch.Tensor:
        source = exact(self.value)
        if source.is_complex() and not dtype.is_complex:
            converted = source.real.to(dtype)  # what the cast keeps, without its warning
        else:
            converted = source.to(dtype)
        if not (type(self.value) is int and 0 <= self.value <= 1):  # 0 and 1 fit every dtype
            check_fits(self.value, converted, _DOES_NOT_FIT)
        return converted

    def flat(
        self, dims: tuple[int, ...], dtype: torch.dtype, start: int, stop: int, key: Any = None
    ) -> torch.Tensor:
        """Elements ``[start, stop)`` of the flattened value (``key`` is not needed)."""
        return self._generate((math.prod(dims),), dtype, _CPU)[start:stop]

    def _generate(self, dims, dtype, device):
        source = self._source(dtype).to(device)
        if source.numel() == math.prod(dims):
            return source.reshape(dims).clone()
        if source.numel() == 1:
            return source.reshape(()).expand(dims).clone()
        raise ValueError(
            f"constant_initializer value has {source.numel()} elements but shape {dims} "
            f"needs {math.prod(dims)}; give a scalar or exactly that many values"
        )


class Zeros(Constant):
    """All zeros, for any dtype.

    >>> zeros_initializer()((2,), dtype=torch.int64)
    tensor([0, 0])
    """

    _name = "zeros_initializer"
    _fields = ()
    value: ValueLike  # set here, not by Constant's __init__ (made in forwards: kept short)

    def __init__(self) -> None:
        self.value = 0


class Ones(Constant):
    """All ones, for any dtype.

    >>> ones_initializer()((3,))
    tensor([1., 1., 1.])
    """

    _name = "ones_initializer"
    _fields = ()

    def __init__(self) -> None:
        super().__init__(1)


class RandomUniform(Elementwise):
    """Uniform values in ``[minval, maxval)``; ``maxval=None`` means 1 (floats only).

    Integer dtypes draw integers in ``[minval, maxval)`` and need ``maxval``.

    >>> x = random_uniform_initializer(-1.0, 1.0, seed=3)((100,))
    >>> bool(x.min() >= -1.0 and x.max() < 1.0)
    True
    >>> random_uniform_initializer(0, 10, seed=3)((4,), dtype=torch.int32).dtype
    torch.int32
    """

    _name = "random_uniform_initializer"
    _fields = ("minval", "maxval", "seed")
    minval: float
    maxval: float | None
    seed: int | None

    def __init__(
        self, minval: float = 0.0, maxval: float | None = None, seed: int | None = None
    ) -> None:
        self.minval = _check_real("minval", minval)
        self.maxval = None if maxval is None else _check_real("maxval", maxval)
        self.seed = _check_seed(seed)
        if self.maxval is not None:
            self._check_order(self.minval, self.maxval)

    @staticmethod
    def _check_order(low: float, high: float) -> None:
        if not low < high:
            raise ValueError(f"minval must be less than maxval, got minval={low}, maxval={high}")

    def _spec(self, dims, dtype):
        if dtype.is_floating_point:
            high = 1.0 if self.maxval is None else self.maxval
            self._check_order(self.minval, high)
            return "uniform", self.minval, high
        if not _is_integer(dtype):
            raise ValueError(
                f"random_uniform_initializer needs a floating or integer dtype, got {dtype}"
            )
        return self._integers(dtype)

    def _integers(self, dtype):
        if self.maxval is None:
            raise ValueError(f"random_uniform_initializer needs maxval for integer dtype {dtype}")
        low, high = self.minval, self.maxval
        if low != math.floor(low) or high != math.floor(high):
            raise TypeError(f"minval and maxval must be integers for {dtype}, got {low}, {high}")
        info = torch.iinfo(dtype)
        if low < info.min or high - 1 > info.max:
            raise ValueError(
                f"[minval, maxval) = [{int(low)}, {int(high)}) does not fit {dtype}, "
                f"whose range is [{info.min}, {info.max}]"
            )
        return "integers", low, high


class RandomNormal(Elementwise):
    """Normal values with the given ``mean`` and ``stddev``.

    >>> random_normal_initializer(stddev=0.0)((2,))
    tensor([0., 0.])
    """

    _name = "random_normal_initializer"
    _fields = ("mean", "stddev", "seed")
    mean: float
    stddev: float
    seed: int | None
    _kind = "normal"

    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None) -> None:
        self.mean = _check_real("mean", mean)
        self.stddev = _check_real("stddev", stddev, minimum=0)
        self.seed = _check_seed(seed)

    def _spec(self, dims, dtype):
        _check_floating(self._name, dtype)
        return self._kind, self.mean, self.stddev


class TruncatedNormal(RandomNormal):
    """Normal values, with those beyond two ``stddev`` of ``mean`` drawn again.

    The result lies in ``[mean - 2*stddev, mean + 2*stddev]``; its standard deviation is
    about ``0.88 * stddev``.

    >>> x = truncated_normal_initializer(mean=1.0, stddev=0.5, seed=0)((1000,))
    >>> bool(x.min() >= 0.0 and x.max() <= 2.0)
    True
    """

    _name = "truncated_normal_initializer"
    _kind = "truncated_normal"


class VarianceScaling(Elementwise):
    """Samples scaled to the weight's fans: variance ``scale / n``.

    ``n`` is fan_in, fan_out or their mean (``mode``), from :func:`compute_fans`.
    ``distribution`` is ``"truncated_normal"`` (or its TF-1 alias ``"normal"``: stddev
    ``sqrt(scale/n) / 0.8796...`` so the truncated result has the wanted variance),
    ``"untruncated_normal"`` (stddev ``sqrt(scale/n)``) or ``"uniform"`` (limit
    ``sqrt(3*scale/n)``), in any case (``"Uniform"`` too, as in TensorFlow).

    >>> x = variance_scaling_initializer(2.0, "fan_in", "uniform", seed=0)((600, 10))
    >>> bool(x.abs().max() <= 0.1)
    True
    """

    _name = "variance_scaling_initializer"
    _fields = ("scale", "mode", "distribution", "seed")
    scale: float
    mode: str
    distribution: str
    seed: int | None

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ) -> None:
        self.scale = _check_real("scale", scale)
        if not self.scale > 0:
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        self.mode = _check_choice("mode", mode, _MODES)
        if isinstance(distribution, str):
            distribution = distribution.lower()  # as TensorFlow: "Uniform" is "uniform"
        self.distribution = _check_choice("distribution", distribution, _DISTRIBUTIONS)
        self.seed = _check_seed(seed)

    def _spec(self, dims, dtype):
        _check_floating(self._name, dtype)
        fan_in, fan_out = compute_fans(dims)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return "uniform", -limit, limit
        if self.distribution == "untruncated_normal":
            return "normal", 0.0, math.sqrt(variance)
        return "truncated_normal", 0.0, math.sqrt(variance) / _TRUNCNORM_STD


class GlorotUniform(VarianceScaling):
    """Glorot (Xavier) uniform: limit ``sqrt(6 / (fan_in + fan_out))``, TF fans.

    >>> x = glorot_uniform_initializer(seed=0)((300, 100))
    >>> bool(x.abs().max() <= math.sqrt(6 / 400))
    True
    """

    _name = "glorot_uniform_initializer"
    _fields = ("seed",)

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_avg", "uniform", seed)


class GlorotNormal(VarianceScaling):
    """Glorot (Xavier) truncated normal: variance ``2 / (fan_in + fan_out)``, TF fans.

    >>> glorot_normal_initializer(seed=0)((3, 3, 16, 32)).shape
    torch.Size([3, 3, 16, 32])
    """

    _name = "glorot_normal_initializer"
    _fields = ("seed",)

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``, reshaped to a shape of 2 or more dims.

    The shape is flattened to ``(prod(shape[:-1]), shape[-1])``; rows are orthonormal
    when there are fewer rows than columns, columns otherwise.

    >>> q = orthogonal_initializer(seed=0)((4, 3))
    >>> torch.allclose(q.T @ q, torch.eye(3), atol=1e-5)
    True
    """

    _name = "orthogonal_initializer"
    _fields = ("gain", "seed")
    gain: float
    seed: int | None

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        self.gain = _check_real("gain", gain)
        self.seed = _check_seed(seed)

    def _generate(self, dims, dtype, device):
        _check_floating(self._name, dtype)
        if len(dims) < 2:
            raise ValueError(
                f"orthogonal_initializer needs a shape with at least 2 dimensions, got {dims}"
            )
        rows, cols = math.prod(dims[:-1]), dims[-1]
        flat = (max(rows, cols), min(rows, cols))
        if rows * cols == 0:
            return torch.zeros(dims, dtype=dtype, device=device)
        key = _keyed.active() if self.seed is None else None
        if key is not None and device.type != "meta":  # the whole matrix, keyed, on CPU
            fill = _keyed.fill("normal", 0.0, 1.0, _work_dtype(dtype))
            a = _keyed.draw(fill, rows * cols, key, 0, rows * cols).reshape(flat)
        else:
            a = _normal(flat, 0.0, 1.0, _work_dtype(dtype), device, self.seed)
        q, r = torch.linalg.qr(a)
        q = q * torch.where(r.diagonal() < 0, -1.0, 1.0).to(q.dtype)
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(dims).to(dtype=dtype, device=device)


class InitFrom(Initializer):
    """Adapts an in-place ``torch.nn.init`` function to the initializer protocol.

    Makes ``torch.empty(shape, dtype, device)`` and calls ``fn(t, *args, **kwargs)`` on it
    under ``torch.no_grad()``. Note that ``torch.nn.init`` computes fans in PyTorch's
    ``[out, in, *kernel]`` layout, not TensorFlow's; use
    :func:`variance_scaling_initializer` for TF-layout weights.

    >>> init_from(torch.nn.init.constant_, 2.0)((2,))
    tensor([2., 2.])
    """

    _name = "init_from"
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if not callable(fn):
            raise TypeError(f"init_from needs a callable such as torch.nn.init.zeros_, got {fn!r}")
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __repr__(self) -> str:
        name = f"{getattr(self.fn, '__module__', '')}.{getattr(self.fn, '__qualname__', '')}"
        rest = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"init_from({', '.join([name.strip('.') or repr(self.fn), *rest])})"

    def _generate(self, dims, dtype, device):
        key = _keyed.active()
        if key is None or device.type == "meta":
            return self._make(dims, dtype, device)
        with _keyed.seeded_global_rng(key):  # made on CPU: the same on every device
            return self._make(dims, dtype, _CPU).to(device)

    def _make(self, dims, dtype, device):
        t = torch.empty(dims, dtype=dtype, device=device)
        with torch.no_grad():
            self.fn(t, *self.args, **self.kwargs)
        return t


# ---------------------------------------------------------------------------- public names

constant_initializer = Constant
zeros_initializer = Zeros
ones_initializer = Ones
random_uniform_initializer = RandomUniform
random_normal_initializer = RandomNormal
truncated_normal_initializer = TruncatedNormal
variance_scaling_initializer = VarianceScaling
glorot_uniform_initializer = GlorotUniform
glorot_normal_initializer = GlorotNormal
orthogonal_initializer = Orthogonal
init_from = InitFrom


def default_initializer(dtype: torch.dtype) -> Initializer:
    """The initializer ``get_variable`` uses when none is given, as in TensorFlow.

    Glorot-uniform for floating dtypes, zeros for integer and bool dtypes; other dtypes
    (complex) need an explicit initializer.

    >>> default_initializer(torch.float32)
    glorot_uniform_initializer(seed=None)
    >>> default_initializer(torch.bool)
    zeros_initializer()
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")
    if dtype.is_floating_point:
        return GlorotUniform()
    if dtype == torch.bool or _is_integer(dtype):
        return Zeros()
    raise ValueError(
        f"no default initializer for dtype {dtype}: pass initializer=... explicitly "
        "(defaults exist for floating, integer and bool dtypes)"
    )


__all__ = [
    "Elementwise",
    "Initializer",
    "compute_fans",
    "constant_initializer",
    "default_initializer",
    "glorot_normal_initializer",
    "glorot_uniform_initializer",
    "init_from",
    "ones_initializer",
    "orthogonal_initializer",
    "random_normal_initializer",
    "random_uniform_initializer",
    "truncated_normal_initializer",
    "variance_scaling_initializer",
    "zeros_initializer",
]
