"""Tests for torchscope.initializers: TF-1 statistics, fans, seeds, dtypes and errors."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchscope import _initializers as init

N = 1_000_000
TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated at +-2


def _stats(x: torch.Tensor) -> tuple[float, float]:
    x = x.double()
    return x.mean().item(), x.std().item()


def _all_random(seed=None):
    return [
        init.random_uniform_initializer(-1.0, 2.0, seed=seed),
        init.random_normal_initializer(0.5, 2.0, seed=seed),
        init.truncated_normal_initializer(0.5, 2.0, seed=seed),
        init.variance_scaling_initializer(2.0, "fan_out", "uniform", seed=seed),
        init.variance_scaling_initializer(seed=seed),
        init.glorot_uniform_initializer(seed=seed),
        init.glorot_normal_initializer(seed=seed),
        init.orthogonal_initializer(1.5, seed=seed),
    ]


def _all():
    fixed = [
        init.constant_initializer(3),
        init.zeros_initializer(),
        init.ones_initializer(),
        init.init_from(torch.nn.init.uniform_, a=-2.0, b=2.0),
    ]
    return _all_random(seed=7) + fixed


# ------------------------------------------------------------------------------ fans


@pytest.mark.parametrize(
    ("shape", "fans"),
    [
        ((), (1, 1)),
        ((7,), (7, 7)),
        ((300, 100), (300, 100)),
        ((5, 5, 32, 32), (800, 800)),
        ((3, 3, 16, 64), (144, 576)),
        ((2, 3, 4, 5, 6), (120, 144)),
        ((0, 4), (0, 4)),
        (torch.Size([4, 6]), (4, 6)),
    ],
)
def test_compute_fans_tf_convention(shape, fans):
    assert init.compute_fans(shape) == fans
    assert all(isinstance(f, float) for f in init.compute_fans(shape))


# ------------------------------------------------------------------------------ constants


def test_constant_scalar_fills_and_list_reshapes():
    assert torch.equal(init.constant_initializer(2.5)((2, 3)), torch.full((2, 3), 2.5))
    got = init.constant_initializer([1, 2, 3, 4, 5, 6])((2, 3))
    assert torch.equal(got, torch.arange(1.0, 7.0).reshape(2, 3))
    nested = init.constant_initializer([[1, 2], [3, 4]])((4,), dtype=torch.int32)
    assert nested.tolist() == [1, 2, 3, 4] and nested.dtype == torch.int32
    assert init.constant_initializer([7.0])(()).item() == 7.0
    assert init.constant_initializer(5)((0, 3)).shape == (0, 3)


def test_constant_from_tensor_is_copied():
    value = torch.arange(6.0)
    c = init.constant_initializer(value)
    value.zero_()
    out = c((3, 2), dtype=torch.float64)
    assert out.dtype == torch.float64 and out.flatten().tolist() == [0, 1, 2, 3, 4, 5]
    out.add_(1)  # the result never aliases the stored value
    assert c((6,)).tolist() == [0, 1, 2, 3, 4, 5]


def test_constant_from_numpy_array():
    np = pytest.importorskip("numpy")
    got = init.constant_initializer(np.arange(6).reshape(2, 3))((3, 2), dtype=torch.float64)
    assert got.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert init.constant_initializer(np.float32(2.5))((2,)).tolist() == [2.5, 2.5]


def test_constant_copies_lists():
    values = [1.0, 2.0]
    c = init.constant_initializer(values)
    values[0] = 5.0
    assert c((2,)).tolist() == [1.0, 2.0]


def test_constant_keeps_float64_precision():
    assert init.constant_initializer(0.1)((1,), dtype=torch.float64).item() == 0.1


def test_constant_wrong_size_names_both_sizes():
    with pytest.raises(ValueError, match=r"has 3 elements but shape \(2, 2\) needs 4"):
        init.constant_initializer([1, 2, 3])((2, 2))


def test_constant_rejects_bad_values():
    with pytest.raises(ValueError, match="not a rectangular array"):
        init.constant_initializer([[1, 2], [3]])
    with pytest.raises(TypeError, match=r"value must be a number, a .nested. list"):
        init.constant_initializer("abc")
    with pytest.raises(TypeError, match=r"value 0\.5 does not fit torch\.int32"):
        init.constant_initializer(0.5)((2,), dtype=torch.int32)
    with pytest.raises(TypeError, match=r"value \(1\+2j\) does not fit torch\.float32"):
        init.constant_initializer(1 + 2j)((2,))
    assert init.constant_initializer(2.0)((2,), dtype=torch.int64).tolist() == [2, 2]
    assert init.constant_initializer(1 + 2j)((1,), dtype=torch.complex64).item() == 1 + 2j


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int32, torch.bool]
)
def test_zeros_and_ones_any_dtype(dtype):
    z = init.zeros_initializer()((2, 3), dtype=dtype)
    o = init.ones_initializer()((2, 3), dtype=dtype)
    assert z.dtype == o.dtype == dtype
    assert torch.equal(z, torch.zeros(2, 3, dtype=dtype))
    assert torch.equal(o, torch.ones(2, 3, dtype=dtype))


# ------------------------------------------------------------------------------ uniform / normal


def test_random_uniform_statistics_and_bounds():
    x = init.random_uniform_initializer(-3.0, 5.0, seed=1)((N,))
    mean, std = _stats(x)
    assert x.min() >= -3.0 and x.max() < 5.0
    assert abs(mean - 1.0) < 0.01
    assert abs(std - 8 / math.sqrt(12)) < 0.005


def test_random_uniform_default_maxval_is_one():
    x = init.random_uniform_initializer()((N,), dtype=torch.float64)
    assert x.min() >= 0.0 and x.max() < 1.0 and abs(x.mean().item() - 0.5) < 0.002


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.int8])
def test_random_uniform_integers(dtype):
    x = init.random_uniform_initializer(2, 9, seed=0)((10_000,), dtype=dtype)
    assert x.dtype == dtype
    assert set(x.tolist()) == set(range(2, 9))


def test_random_uniform_errors():
    with pytest.raises(ValueError, match=r"needs maxval for integer dtype torch.int32"):
        init.random_uniform_initializer()((3,), dtype=torch.int32)
    with pytest.raises(
        ValueError, match=r"minval must be less than maxval, got minval=2.0, maxval=1.0"
    ):
        init.random_uniform_initializer(2.0, 1.0)
    with pytest.raises(
        ValueError, match=r"minval must be less than maxval, got minval=1.5, maxval=1.0"
    ):
        init.random_uniform_initializer(1.5)((3,))
    with pytest.raises(ValueError, match=r"needs a floating or integer dtype, got torch.bool"):
        init.random_uniform_initializer(0, 2)((3,), dtype=torch.bool)
    with pytest.raises(TypeError, match=r"minval and maxval must be integers for torch.int64"):
        init.random_uniform_initializer(0.5, 3)((3,), dtype=torch.int64)
    with pytest.raises(ValueError, match=r"\[0, 1000\) does not fit torch.int8"):
        init.random_uniform_initializer(0, 1000)((3,), dtype=torch.int8)
    with pytest.raises(TypeError, match="maxval must be a real number, got 'x'"):
        init.random_uniform_initializer(0, "x")


def test_random_normal_statistics():
    x = init.random_normal_initializer(mean=-2.0, stddev=3.0, seed=2)((N,))
    mean, std = _stats(x)
    assert abs(mean + 2.0) < 0.015 and abs(std - 3.0) / 3.0 < 0.005


def test_truncated_normal_bounds_and_std():
    mean, stddev = 1.0, 0.5
    x = init.truncated_normal_initializer(mean, stddev, seed=3)((N,), dtype=torch.float64)
    assert x.min() >= mean - 2 * stddev and x.max() <= mean + 2 * stddev
    assert x.min() < mean - 1.99 * stddev and x.max() > mean + 1.99 * stddev
    m, s = _stats(x)
    assert abs(m - mean) < 0.002 and abs(s / stddev - TRUNC_STD) < 0.004


@pytest.mark.parametrize(
    "make",
    [
        init.random_normal_initializer,
        init.truncated_normal_initializer,
        init.glorot_normal_initializer,
    ],
)
@pytest.mark.parametrize("dtype", [torch.int32, torch.bool, torch.complex64])
def test_normal_needs_floating_dtype(make, dtype):
    with pytest.raises(ValueError, match=f"needs a floating dtype .*, got {dtype}"):
        make()((3,), dtype=dtype)


def test_normal_rejects_negative_stddev():
    with pytest.raises(ValueError, match="stddev must be >= 0, got -1"):
        init.random_normal_initializer(stddev=-1)
    with pytest.raises(ValueError, match="stddev must be >= 0, got nan"):
        init.truncated_normal_initializer(stddev=float("nan"))
    with pytest.raises(TypeError, match="mean must be a real number, got True"):
        init.random_normal_initializer(mean=True)


# ------------------------------------------------------------------------------ variance scaling


SHAPE = (10, 10, 50, 200)  # 10**6 elements; TF fans: in 5000, out 20000, avg 12500
FANS = {"fan_in": 5000.0, "fan_out": 20000.0, "fan_avg": 12500.0}


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize(
    "distribution", ["normal", "truncated_normal", "untruncated_normal", "uniform"]
)
def test_variance_scaling_std_and_bounds(mode, distribution):
    scale = 2.0
    x = init.variance_scaling_initializer(scale, mode, distribution, seed=4)(SHAPE)
    assert x.shape == SHAPE
    mean, std = _stats(x)
    target = math.sqrt(scale / FANS[mode])
    assert abs(mean) < 0.005 * target
    assert abs(std / target - 1) < 0.006
    if distribution == "uniform":
        limit = math.sqrt(3 * scale / FANS[mode])
        assert x.abs().max() <= limit and x.abs().max() > 0.999 * limit
    elif distribution in ("normal", "truncated_normal"):
        bound = 2 * target / TRUNC_STD
        assert x.abs().max() <= bound * (1 + 1e-6) and x.abs().max() > 0.99 * bound
    else:
        assert x.abs().max() > 4 * target  # untruncated tails


def test_variance_scaling_small_fans_use_at_least_one():
    x = init.variance_scaling_initializer(1.0, "fan_in", "uniform", seed=0)((0, 5))
    assert x.shape == (0, 5)
    y = init.variance_scaling_initializer(1.0, "fan_in", "uniform", seed=0)(())
    assert abs(y.item()) <= math.sqrt(3)


def test_variance_scaling_errors():
    with pytest.raises(
        ValueError, match="mode must be one of 'fan_in', 'fan_out', 'fan_avg'; got 'fan'"
    ):
        init.variance_scaling_initializer(mode="fan")
    with pytest.raises(
        ValueError, match="distribution must be one of 'normal', 'truncated_normal'"
    ):
        init.variance_scaling_initializer(distribution="gaussian")
    with pytest.raises(ValueError, match="scale must be a positive number, got 0"):
        init.variance_scaling_initializer(scale=0)
    with pytest.raises(ValueError, match=r"scale must be a positive number, got -1.0"):
        init.variance_scaling_initializer(scale=-1.0)


def test_variance_scaling_distribution_ignores_case():
    # TensorFlow lower-cases the distribution before checking it.
    x = init.variance_scaling_initializer(distribution="Uniform", seed=0)((4, 4))
    y = init.variance_scaling_initializer(distribution="uniform", seed=0)((4, 4))
    assert torch.equal(x, y)
    assert init.variance_scaling_initializer(distribution="TRUNCATED_NORMAL").distribution == (
        "truncated_normal"
    )
    with pytest.raises(ValueError, match=r"distribution must be one of .*; got 'gaussian'"):
        init.variance_scaling_initializer(distribution="Gaussian")
    with pytest.raises(ValueError, match=r"distribution must be one of .*; got 3"):
        init.variance_scaling_initializer(distribution=3)


@pytest.mark.parametrize("make", [lambda: init.ones_initializer(), lambda: _all_random(seed=1)[0]])
def test_initializers_accept_and_ignore_partition_info(make):
    # TensorFlow-1 initializers are called init(shape, dtype=None, partition_info=None).
    initializer = make()
    torch.manual_seed(0)
    with_info = initializer([2, 3], dtype=torch.float32, partition_info=None)
    torch.manual_seed(0)
    assert torch.equal(with_info, initializer([2, 3], dtype=torch.float32))


@pytest.mark.parametrize(("shape", "fan_sum"), [((5, 5, 32, 32), 1600), ((300, 100), 400)])
def test_glorot_uniform_limit_uses_tf_fans(shape, fan_sum):
    limit = math.sqrt(6 / fan_sum)
    reps = N // math.prod(shape) + 1
    x = torch.cat([init.glorot_uniform_initializer(seed=i)(shape).flatten() for i in range(reps)])
    assert x.abs().max() <= limit and x.abs().max() > 0.999 * limit
    assert abs(x.double().std().item() / (limit / math.sqrt(3)) - 1) < 0.005


@pytest.mark.parametrize(("shape", "fan_sum"), [((5, 5, 32, 32), 1600), ((300, 100), 400)])
def test_glorot_normal_is_truncated_fan_avg(shape, fan_sum):
    target = math.sqrt(2 / fan_sum)
    reps = N // math.prod(shape) + 1
    x = torch.cat([init.glorot_normal_initializer(seed=i)(shape).flatten() for i in range(reps)])
    assert x.abs().max() <= 2 * target / TRUNC_STD * (1 + 1e-6)
    assert abs(x.double().std().item() / target - 1) < 0.005


# ------------------------------------------------------------------------------ orthogonal


@pytest.mark.parametrize(
    ("shape", "rows", "cols"),
    [((6, 4), 6, 4), ((3, 7), 3, 7), ((3, 3, 8, 16), 72, 16), ((2, 2, 40), 4, 40)],
)
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_tall_and_wide(shape, rows, cols, gain):
    q = init.orthogonal_initializer(gain, seed=5)(shape, dtype=torch.float64)
    assert q.shape == shape
    m = q.reshape(rows, cols)
    gram = m.T @ m if rows >= cols else m @ m.T
    assert torch.allclose(
        gram, gain**2 * torch.eye(min(rows, cols), dtype=torch.float64), atol=1e-10
    )


def test_orthogonal_square_float32_and_bfloat16():
    q = init.orthogonal_initializer(seed=0)((64, 64))
    assert torch.allclose(q @ q.T, torch.eye(64), atol=1e-5)
    b = init.orthogonal_initializer(seed=0)((8, 8), dtype=torch.bfloat16)
    reference = init.orthogonal_initializer(seed=0)((8, 8))  # drawn in float32, then cast
    assert b.dtype == torch.bfloat16 and torch.allclose(b.float(), reference, atol=1e-2)


def test_orthogonal_errors_and_empty():
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got \(5,\)"):
        init.orthogonal_initializer()((5,))
    assert init.orthogonal_initializer()((0, 3)).shape == (0, 3)


# ------------------------------------------------------------------------------ seeds


@pytest.mark.parametrize("index", range(8))
def test_seed_gives_same_values_every_call(index):
    a, b = _all_random(seed=11)[index], _all_random(seed=11)[index]
    other = _all_random(seed=12)[index]
    shape = (16, 24)
    assert torch.equal(a(shape), a(shape)) and torch.equal(a(shape), b(shape))
    assert not torch.equal(a(shape), other(shape))


def test_seeded_draws_leave_global_generator_alone():
    torch.manual_seed(0)
    expected = torch.rand(5)
    torch.manual_seed(0)
    for initializer in _all_random(seed=1):
        initializer((4, 4))
    assert torch.equal(torch.rand(5), expected)


@pytest.mark.parametrize("index", range(8))
def test_manual_seed_repeats_unseeded_draws(index):
    initializer = _all_random(seed=None)[index]
    torch.manual_seed(123)
    first = initializer((8, 8))
    second = initializer((8, 8))
    torch.manual_seed(123)
    assert torch.equal(initializer((8, 8)), first)
    assert not torch.equal(first, second)


def test_huge_and_negative_seeds_are_accepted():
    x = init.random_normal_initializer(seed=-1)((3,))
    assert torch.equal(x, init.random_normal_initializer(seed=2**64 - 1)((3,)))
    with pytest.raises(TypeError, match=r"seed must be an int or None, got 1.5"):
        init.random_normal_initializer(seed=1.5)


# ------------------------------------------------------------------------------ init_from


def test_init_from_matches_kaiming_uniform():
    adapter = init.init_from(torch.nn.init.kaiming_uniform_, a=0.0)
    torch.manual_seed(42)
    got = adapter((64, 32))
    torch.manual_seed(42)
    expected = torch.nn.init.kaiming_uniform_(torch.empty(64, 32), a=0.0)
    assert torch.equal(got, expected)
    assert not got.requires_grad
    assert repr(adapter) == "init_from(torch.nn.init.kaiming_uniform_, a=0.0)"


def test_init_from_passes_args_dtype_and_rejects_non_callable():
    x = init.init_from(torch.nn.init.normal_, 3.0, std=0.0)((2, 2), dtype=torch.float64)
    assert x.dtype == torch.float64 and torch.equal(x, torch.full((2, 2), 3.0, dtype=torch.float64))
    with pytest.raises(
        TypeError, match=r"init_from needs a callable such as torch.nn.init.zeros_, got 3"
    ):
        init.init_from(3)


# ---------------------------------------------------------------------- dtypes, devices, shapes


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("index", range(12))
def test_floating_dtypes(dtype, index):
    x = _all()[index]((6, 5), dtype=dtype)
    assert x.dtype == dtype and x.shape == (6, 5) and torch.isfinite(x).all()


def test_default_dtype_and_device_are_used():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert init.glorot_uniform_initializer()((2, 2)).dtype == torch.float64
    finally:
        torch.set_default_dtype(old)
    with torch.device("meta"):
        for initializer in _all():
            if not isinstance(initializer, init.Orthogonal):
                assert initializer((2, 3)).device.type == "meta"
    assert init.ones_initializer()((2,), device="meta").device.type == "meta"


def test_shape_and_dtype_errors():
    ones = init.ones_initializer()
    with pytest.raises(ValueError, match=r"shape entries must be non-negative ints, got \(2, -1\)"):
        ones((2, -1))
    with pytest.raises(
        TypeError, match=r"shape must be a tuple, list or torch.Size of ints, got 3 \(int\)"
    ):
        ones(3)
    with pytest.raises(TypeError, match=r"shape entries must be ints, got \(2, None\)"):
        ones((2, None))
    with pytest.raises(TypeError, match=r"dtype must be a torch.dtype or None, got 'float32'"):
        ones((2,), dtype="float32")
    with pytest.raises(ValueError, match=r"non-negative ints, got \(-3,\)"):
        init.compute_fans([-3])


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA not available (no GPU on this machine)"
)
def test_cuda_seeded_matches_cpu_and_unseeded_runs_on_device():
    for initializer in _all_random(seed=3):
        cpu, gpu = initializer((32, 16)), initializer((32, 16), device="cuda")
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu)
    for initializer in _all_random(seed=None):
        assert initializer((32, 16), device="cuda").device.type == "cuda"


# ------------------------------------------------------------------------------ copy, pickle, repr


@pytest.mark.parametrize("index", range(12))
def test_deepcopy_and_pickle(index):
    original = _all()[index]
    for clone in (copy.deepcopy(original), pickle.loads(pickle.dumps(original))):
        assert type(clone) is type(original) and repr(clone) == repr(original)
        assert torch.equal(clone((5, 4)), original((5, 4))) or isinstance(original, init.InitFrom)


def test_reprs():
    assert repr(init.constant_initializer([1, 2])) == "constant_initializer(value=[1, 2])"
    assert repr(init.zeros_initializer()) == "zeros_initializer()"
    assert repr(init.random_uniform_initializer(seed=1)) == (
        "random_uniform_initializer(minval=0.0, maxval=None, seed=1)"
    )
    assert repr(init.variance_scaling_initializer()) == (
        "variance_scaling_initializer(scale=1.0, mode='fan_in', "
        "distribution='truncated_normal', seed=None)"
    )
    assert repr(init.glorot_normal_initializer(seed=3)) == "glorot_normal_initializer(seed=3)"
    assert repr(init.orthogonal_initializer(2)) == "orthogonal_initializer(gain=2.0, seed=None)"


def test_default_initializer_follows_tf():
    assert isinstance(init.default_initializer(torch.float16), init.GlorotUniform)
    for dtype in (torch.int32, torch.int64, torch.uint8, torch.bool):
        assert isinstance(init.default_initializer(dtype), init.Zeros)
        assert init.default_initializer(dtype)((2,), dtype=dtype).dtype == dtype
    with pytest.raises(
        ValueError, match=r"no default initializer for dtype torch.complex64: pass initializer="
    ):
        init.default_initializer(torch.complex64)
    with pytest.raises(TypeError, match=r"dtype must be a torch.dtype, got 'int32'"):
        init.default_initializer("int32")


# ------------------------------------------------------------------------------ properties

shapes = st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple)
float_dtypes = st.sampled_from([torch.float32, torch.float64, torch.bfloat16])


@settings(max_examples=60, deadline=None)
@given(shape=shapes, dtype=float_dtypes, index=st.integers(0, 11), seed=st.integers(0, 2**32))
def test_any_shape_gives_that_shape_and_dtype(shape, dtype, index, seed):
    initializer = _all_random(seed)[index] if index < 8 else _all()[index]
    if isinstance(initializer, init.Orthogonal) and len(shape) < 2:
        return
    x = initializer(shape, dtype=dtype)
    assert x.shape == shape and x.dtype == dtype


@settings(max_examples=60, deadline=None)
@given(
    low=st.floats(-1e3, 1e3),
    width=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**32),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_uniform_within_bounds(low, width, seed, dtype):
    x = init.random_uniform_initializer(low, low + width, seed=seed)((257,), dtype=dtype)
    bounds = torch.tensor([low, low + width], dtype=dtype)  # the bounds as that dtype rounds them
    assert x.min() >= bounds[0] and x.max() <= bounds[1]


@settings(max_examples=40, deadline=None)
@given(low=st.integers(-100, 100), width=st.integers(1, 50), seed=st.integers(0, 2**32))
def test_integer_uniform_within_bounds(low, width, seed):
    x = init.random_uniform_initializer(low, low + width, seed=seed)((100,), dtype=torch.int64)
    assert x.min() >= low and x.max() < low + width


@pytest.mark.parametrize(
    "initializer",
    [
        init.truncated_normal_initializer(),
        init.glorot_normal_initializer(),
        init.variance_scaling_initializer(),
        init.variance_scaling_initializer(2.0, "fan_avg", "normal"),
    ],
    ids=repr,
)
def test_truncated_normal_initializers_on_meta_without_seed(initializer):
    x = initializer((3, 3, 8, 8), dtype=torch.float32, device="meta")
    assert x.device.type == "meta" and x.shape == (3, 3, 8, 8) and x.dtype == torch.float32


@pytest.mark.parametrize(
    ("value", "dtype", "message"),
    [
        (-1, torch.uint8, r"value -1 does not fit torch\.uint8: -1 would become 255"),
        (300, torch.int8, r"value 300 does not fit torch\.int8: 300 would become 44"),
        (2**40, torch.int32, r"value 1099511627776 does not fit torch\.int32: 1099511627776 "),
        (float("inf"), torch.int32, r"value inf does not fit torch\.int32: inf would become"),
        (float("nan"), torch.int64, r"value nan does not fit torch\.int64: nan would become"),
        (3, torch.bool, r"value 3 does not fit torch\.bool: 3 would become True"),
        ([0, 2], torch.bool, r"value \[0, 2\] does not fit torch\.bool: 2 would become True"),
        (torch.tensor([1, -5]), torch.uint8, r"does not fit torch\.uint8: -5 would become 251"),
        (1j, torch.float32, r"value 1j does not fit torch\.float32: 1j would become 0\.0"),
    ],
)
def test_constant_initializer_refuses_values_the_dtype_would_change(value, dtype, message):
    with pytest.raises(TypeError, match=message):
        init.constant_initializer(value)((2,), dtype=dtype)


@pytest.mark.parametrize(
    ("value", "dtype"),
    [(255, torch.uint8), (-128, torch.int8), (1, torch.bool), (0, torch.bool), (2.0, torch.int32)],
)
def test_constant_initializer_accepts_values_that_fit(value, dtype):
    out = init.constant_initializer(value)((2,), dtype=dtype)
    assert out.dtype == dtype and out.tolist() == [dtype_cast(value, dtype)] * 2


def dtype_cast(value, dtype):
    return bool(value) if dtype == torch.bool else int(value)
