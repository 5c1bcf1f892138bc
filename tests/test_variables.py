"""get_variable: create, reuse, AUTO_REUSE, checks on reuse, initializers given as
values, default initializers, trainable, device, constraints and the dtype rule."""

import math
import re

import numpy as np
import pytest
import torch

import torchscope as ts

# -- create / reuse / AUTO_REUSE ----------------------------------------------------------------


def test_create_returns_a_parameter_with_the_full_name():
    with ts.variable_scope("a"), ts.variable_scope("b"):
        v = ts.get_variable("w", [2, 3])
    assert isinstance(v, torch.nn.Parameter)
    assert v.shape == (2, 3) and v.dtype == torch.float32 and v.requires_grad
    assert ts.name_of(v) == "a/b/w"
    assert ts.get_default_store()["a/b/w"] is v


def test_top_level_variable_has_no_prefix():
    v = ts.get_variable("w", [1])
    assert ts.name_of(v) == "w"


def test_create_twice_raises_with_full_name_and_fix():
    with ts.variable_scope("foo"):
        ts.get_variable("v", [1])
        with pytest.raises(ValueError) as info:
            ts.get_variable("v", [1])
    text = str(info.value)
    assert "Variable foo/v already exists, disallowed." in text
    assert "Did you mean to set reuse=True or reuse=ts.AUTO_REUSE" in text
    # It says where the variable was first made: this file.
    assert "test_variables.py" in text


def test_reuse_returns_the_same_object():
    with ts.variable_scope("foo"):
        v = ts.get_variable("v", [1])
    with ts.variable_scope("foo", reuse=True):
        assert ts.get_variable("v", [1]) is v
        assert ts.get_variable("v") is v


def test_reuse_of_missing_variable_raises():
    with (
        ts.variable_scope("foo", reuse=True),
        pytest.raises(
            ValueError, match=r"Variable foo/missing does not exist.*reuse=ts\.AUTO_REUSE"
        ),
    ):
        ts.get_variable("missing", [1])
    assert len(ts.get_default_store()) == 0


def test_auto_reuse_creates_then_returns():
    with ts.variable_scope("foo", reuse=ts.AUTO_REUSE):
        v = ts.get_variable("v", [3])
        assert ts.get_variable("v", [3]) is v
        assert ts.get_variable("v") is v
    with ts.variable_scope("foo", reuse=ts.AUTO_REUSE):
        assert ts.get_variable("v", [3]) is v
    assert len(ts.get_default_store()) == 1


def test_reuse_flag_repr():
    assert repr(ts.AUTO_REUSE) == "ts.AUTO_REUSE"


@pytest.mark.parametrize("reuse", [True, ts.AUTO_REUSE])
def test_shape_mismatch_on_reuse(reuse):
    with ts.variable_scope("foo"):
        ts.get_variable("v", [2, 3])
    with ts.variable_scope("foo", reuse=reuse):
        with pytest.raises(
            ValueError,
            match=re.escape(
                "Trying to share variable foo/v, but specified shape (3, 2) and found shape (2, 3)"
            ),
        ):
            ts.get_variable("v", [3, 2])
        with pytest.raises(
            ValueError, match=r"specified shape \(2, 3, 1\) and found shape \(2, 3\)"
        ):
            ts.get_variable("v", [2, 3, 1])
        with pytest.raises(ValueError, match=r"specified shape \(\?, 4\) and found shape \(2, 3\)"):
            ts.get_variable("v", [None, 4])


@pytest.mark.parametrize("reuse", [True, ts.AUTO_REUSE])
def test_dtype_mismatch_on_reuse(reuse):
    with ts.variable_scope("foo"):
        ts.get_variable("v", [2], dtype=torch.float32)
    with (
        ts.variable_scope("foo", reuse=reuse),
        pytest.raises(
            ValueError,
            match=re.escape(
                "Trying to share variable foo/v, but specified dtype torch.float64 and found dtype "
                "torch.float32"
            ),
        ),
    ):
        ts.get_variable("v", [2], dtype=torch.float64)


def test_shape_may_be_omitted_on_reuse_and_none_dims_match():
    with ts.variable_scope("foo"):
        v = ts.get_variable("v", [2, 3])
    with ts.variable_scope("foo", reuse=True):
        assert ts.get_variable("v") is v
        assert ts.get_variable("v", [None, 3]) is v
        assert ts.get_variable("v", [2, None]) is v
        assert ts.get_variable("v", [None, None]) is v
        assert ts.get_variable("v", (2, 3)) is v
        assert ts.get_variable("v", torch.Size([2, 3])) is v


def test_int_shape_is_one_dimensional():
    v = ts.get_variable("v", 4)
    assert v.shape == (4,)


def test_scalar_variable():
    v = ts.get_variable("s", [], initializer=ts.constant_initializer(2.0))
    assert v.shape == () and v.item() == 2.0


def test_shape_needed_on_creation():
    with pytest.raises(ValueError, match=r"Shape of a new variable v must be fully defined.*None"):
        ts.get_variable("v")
    with pytest.raises(ValueError, match=r"Shape of a new variable w must be fully defined"):
        ts.get_variable("w", [None, 3])
    assert len(ts.get_default_store()) == 0


def test_initializer_regularizer_trainable_ignored_on_reuse():
    with ts.variable_scope("foo"):
        v = ts.get_variable("v", [2], initializer=ts.constant_initializer(1.0))
    with ts.variable_scope("foo", reuse=True):
        again = ts.get_variable(
            "v",
            [2],
            initializer=ts.constant_initializer(5.0),
            regularizer=lambda t: t.sum(),
            trainable=False,
        )
    assert again is v
    assert torch.all(v == 1.0) and v.requires_grad
    assert ts.regularization_losses() == []


def test_get_variable_name_must_be_str():
    with pytest.raises(TypeError, match=r"get_variable's name must be a str, got int"):
        ts.get_variable(3, [1])
    with ts.variable_scope("r", reuse=True), pytest.raises(TypeError, match=r"must be a str"):
        ts.get_variable(None, [1])


def test_bad_shape_arguments():
    with pytest.raises(ValueError, match=r"negative dimension: \[2, -1\]"):
        ts.get_variable("v", [2, -1])
    with pytest.raises(TypeError, match=r"dimension that is not an int"):
        ts.get_variable("v", [2.5])
    with pytest.raises(TypeError, match=r"must be a list, tuple or torch.Size"):
        ts.get_variable("v", "23")
    with pytest.raises(TypeError, match=r"must be a list of ints"):
        ts.get_variable("v", True)


def test_bad_dtype_argument():
    with pytest.raises(TypeError, match=r"dtype of variable 'v' must be a torch.dtype"):
        ts.get_variable("v", [1], dtype=3)
    v = ts.get_variable("w", [1], dtype="float64")
    assert v.dtype == torch.float64


# -- initializer given as a value ---------------------------------------------------------------


def test_initializer_tensor_value_shape_omitted():
    value = torch.arange(6.0).reshape(2, 3)
    v = ts.get_variable("v", initializer=value)
    assert v.shape == (2, 3)
    torch.testing.assert_close(v.detach(), value)
    # A copy: changing the variable leaves the value alone.
    with torch.no_grad():
        v.add_(1)
    assert value[0, 0] == 0


def test_initializer_number_and_nested_list():
    n = ts.get_variable("n", initializer=1.5)
    assert n.shape == () and n.item() == 1.5 and n.dtype == torch.float32
    lst = ts.get_variable("l", initializer=[[1.0, 2.0], [3.0, 4.0]])
    assert lst.shape == (2, 2)
    assert lst.detach().tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_initializer_value_with_matching_shape():
    v = ts.get_variable("v", [2, 2], initializer=[[1.0, 2.0], [3.0, 4.0]])
    assert v.shape == (2, 2)


def test_initializer_value_with_wrong_shape():
    with pytest.raises(
        ValueError,
        match=r"initializer of variable 'v' is a value of shape \[2, 2\], but shape \[4\]",
    ):
        ts.get_variable("v", [4], initializer=[[1.0, 2.0], [3.0, 4.0]])
    assert "v" not in ts.get_default_store()


def test_initializer_value_takes_dtype():
    v = ts.get_variable("v", initializer=[1, 2, 3], dtype=torch.float64)
    assert v.dtype == torch.float64
    i = ts.get_variable("i", initializer=torch.tensor([1, 2]), dtype=torch.int64)
    assert i.dtype == torch.int64 and not i.requires_grad


@pytest.mark.parametrize(
    ("value", "dtype", "found"),
    [
        (torch.tensor([1.5, 2.7]), torch.int32, "torch.float32"),
        (torch.ones(2), torch.float64, "torch.float32"),
        (torch.tensor([1, 2]), torch.int32, "torch.int64"),
        (np.array([1.0, 2.0]), torch.float32, "torch.float64"),
    ],
)
def test_value_with_its_own_dtype_must_match_an_explicit_dtype(value, dtype, found):
    # TensorFlow: "Initializer type '%s' and explicit dtype '%s' don't match."
    with (
        ts.variable_scope("s"),
        pytest.raises(
            ValueError,
            match=rf"^Initializer type '{found}' and explicit dtype '{dtype}' don't match for "
            r"variable 's/v': .*Convert it first",
        ),
    ):
        ts.get_variable("v", initializer=value, dtype=dtype)
    assert len(ts.get_default_store()) == 0


def test_value_dtype_check_is_for_creation_only():
    v = ts.get_variable("v", initializer=torch.ones(2))
    root = ts.get_variable_scope()
    int_value = torch.ones(2, dtype=torch.int64)
    # On reuse the initializer is ignored (the dtype asked for is still checked).
    with ts.variable_scope(root, reuse=True):
        assert ts.get_variable("v", initializer=int_value, dtype="float32") is v
    with ts.variable_scope(root, reuse=ts.AUTO_REUSE):
        assert ts.get_variable("v", initializer=int_value, dtype="float32") is v
        with pytest.raises(ValueError, match=r"Initializer type 'torch.int64' and explicit dtype"):
            ts.get_variable("w", initializer=int_value, dtype="float32")
    assert list(ts.get_default_store()) == ["v"]


@pytest.mark.parametrize(
    ("value", "dtype", "shown"),
    [
        ([1.5, 2.7], torch.int32, "1.5 would become 1"),
        (0.5, torch.bool, "0.5 would become True"),
        ([1, 2], torch.bool, "2 would become True"),
        ([3, -1], torch.uint8, "-1 would become 255"),
        ([[1.0, 2.0], [3.25, 4.0]], torch.int64, "3.25 would become 3"),
        ([1 + 2j], torch.float32, None),
    ],
)
def test_python_value_that_does_not_fit_the_dtype_is_refused(value, dtype, shown):
    if shown is None:  # torch refuses to drop an imaginary part on its own
        match = r"initializer of variable 'v' is not a value torch.tensor\(\) understands"
        error = TypeError
    else:
        match = rf"^initializer of variable 'v' holds values that dtype {dtype} cannot hold "
        match += rf"exactly: {re.escape(shown)}\. Give values of that type"
        error = ValueError
    with pytest.raises(error, match=match):
        ts.get_variable("v", initializer=value, dtype=dtype)
    with (
        ts.variable_scope("s", dtype=dtype),
        pytest.raises(error, match=match.replace("'v'", "'s/v'")),
    ):
        ts.get_variable("v", initializer=value)  # the scope's dtype too
    assert len(ts.get_default_store()) == 0


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        ([1, 2, 3], torch.float64),
        ([1.0, 2.0], torch.int32),
        (0.1, torch.float16),
        ([1, 0], torch.bool),
        ([True, False], torch.float32),
        (1, torch.complex64),
        (2.0, torch.uint8),
    ],
)
def test_python_value_that_fits_is_converted(value, dtype):
    v = ts.get_variable("v", initializer=value, dtype=dtype)
    assert v.dtype == dtype
    assert torch.equal(v.detach(), torch.tensor(value, dtype=dtype))


def test_initializer_not_understood():
    with pytest.raises(TypeError, match=r"initializer of variable 'v'"):
        ts.get_variable("v", [1], initializer="zeros")


# -- default initializers per dtype --------------------------------------------------------------


def test_default_float_initializer_is_glorot_uniform():
    torch.manual_seed(0)
    v = ts.get_variable("w", [64, 32])
    limit = math.sqrt(6.0 / (64 + 32))
    assert v.abs().max().item() <= limit
    assert v.abs().max().item() > 0.9 * limit
    # Uniform on [-limit, limit]: std is limit / sqrt(3).
    assert v.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.05)


def test_default_glorot_uses_tensorflow_fans_for_conv_kernels():
    torch.manual_seed(0)
    k = ts.get_variable("k", [5, 5, 16, 32])
    receptive = 5 * 5
    limit = math.sqrt(6.0 / (16 * receptive + 32 * receptive))
    assert k.abs().max().item() <= limit
    assert k.abs().max().item() > 0.9 * limit


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool])
def test_default_integer_and_bool_initializer_is_zeros(dtype):
    v = ts.get_variable("v", [3, 2], dtype=dtype)
    assert v.dtype == dtype
    assert not v.requires_grad
    assert not v.any()
    assert v not in ts.trainable_variables()
    assert ts.global_variables() == [v]


def test_default_float64():
    v = ts.get_variable("v", [4, 4], dtype=torch.float64)
    assert v.dtype == torch.float64 and v.requires_grad


def test_scope_initializer_callable_receives_shape_dtype_device():
    calls = []

    def init(shape, dtype=None, device=None):
        calls.append((shape, dtype, device))
        return torch.full(shape, 7.0, dtype=dtype, device=device)

    with ts.variable_scope("s", initializer=init, dtype=torch.float64):
        v = ts.get_variable("v", [2, 1])
    assert calls == [((2, 1), torch.float64, torch.device("cpu"))]
    assert v.dtype == torch.float64 and torch.all(v == 7.0)


def test_tensorflow_style_initializer_without_device_argument():
    def init(shape, dtype=None, partition_info=None):
        return torch.ones(shape, dtype=dtype)

    v = ts.get_variable("v", [3], initializer=init)
    assert torch.all(v == 1.0)


def test_initializer_returning_wrong_shape():
    with pytest.raises(
        ValueError, match=r"of variable 'v' returned shape \[3\], but the variable's shape is \[2\]"
    ):
        ts.get_variable("v", [2], initializer=lambda shape, dtype=None, device=None: torch.zeros(3))


def test_initializer_returning_a_number_is_broadcast_or_refused():
    with pytest.raises(ValueError, match=r"returned shape"):
        ts.get_variable("v", [2], initializer=lambda shape, dtype=None, device=None: 1.0)
    s = ts.get_variable("s", [], initializer=lambda shape, dtype=None, device=None: 1.0)
    assert s.item() == 1.0


@pytest.mark.parametrize(
    ("cls", "expected"),
    [(ts.zeros_initializer, 0.0), (ts.ones_initializer, 1.0), (ts.constant_initializer, 0.0)],
)
def test_initializer_class_is_instantiated(cls, expected):
    # TensorFlow: `if tf_inspect.isclass(initializer): initializer = initializer()`.
    v = ts.get_variable("v", [2], initializer=cls)
    assert torch.all(v == expected)
    with ts.variable_scope("s", initializer=cls):
        w = ts.get_variable("w", [2, 2])
    assert torch.all(w == expected)


def test_initializer_class_glorot_uniform():
    torch.manual_seed(0)
    v = ts.get_variable("v", [3, 4], initializer=ts.glorot_uniform_initializer)
    assert v.shape == (3, 4) and v.abs().max() <= math.sqrt(6 / 7)


def test_initializer_class_needing_arguments_is_refused_with_the_variable_name():
    with pytest.raises(
        TypeError,
        match=r"^initializer InitFrom is a class, and making an instance with no "
        r"arguments failed \(.*'fn'\); pass an instance(.|\n)*\nvariable 'v': raised while",
    ):
        ts.get_variable("v", [2], initializer=ts.init_from)
    assert "v" not in ts.get_default_store()


def test_initializer_errors_name_the_variable():
    with (
        ts.variable_scope("net", initializer=ts.random_normal_initializer()),
        pytest.raises(
            ValueError,
            match=r"^random_normal_initializer needs a floating(.|\n)*\nvariable 'net/step'",
        ),
    ):
        ts.get_variable("step", [], dtype=torch.int64)
    with pytest.raises(
        ValueError,
        match=r"^constant_initializer value has 3 elements but shape(.|\n)*\nvariable 'c'",
    ):
        ts.get_variable("c", [2], initializer=ts.constant_initializer([1, 2, 3]))
    with pytest.raises(
        ValueError,
        match=r"^orthogonal_initializer needs a shape with at least 2(.|\n)*\nvariable 'o'",
    ):
        ts.get_variable("o", [3], initializer=ts.orthogonal_initializer())
    with pytest.raises(
        ValueError, match=r"^no default initializer for dtype torch.complex64(.|\n)*\nvariable 'z'"
    ):
        ts.get_variable("z", [2], dtype=torch.complex64)
    assert len(ts.get_default_store()) == 0


def test_error_from_a_custom_initializer_names_the_variable_and_keeps_its_traceback():
    """The initializer's own exception, its type and message kept, with a note naming the
    variable (PEP 678: Python 3.11 prints it under the message)."""

    def init(shape, dtype=None, device=None):
        raise TypeError("my initializer is broken")

    with (
        pytest.raises(
            TypeError,
            match=r"^my initializer is broken\nvariable 'a/v': raised while its initial value was",
        ) as info,
        ts.variable_scope("a"),
    ):
        ts.get_variable("v", [2], initializer=init)
    assert any(entry.name == "init" for entry in info.traceback)
    assert len(ts.get_default_store()) == 0


# -- trainable, device ---------------------------------------------------------------------------


def test_trainable_false():
    w = ts.get_variable("w", [2])
    step = ts.get_variable("step", [], trainable=False)
    assert not step.requires_grad
    assert isinstance(step, torch.nn.Parameter)
    assert ts.trainable_variables() == [w]
    assert ts.global_variables() == [w, step]
    assert "step" in ts.get_default_store().state_dict()


def test_trainable_must_be_bool():
    with pytest.raises(TypeError, match=r"trainable of variable 'w' must be a bool"):
        ts.get_variable("w", [2], trainable="yes")


@pytest.mark.parametrize("device", ["cpu", "/cpu:0", "/device:CPU:0", torch.device("cpu")])
def test_device_argument(device):
    v = ts.get_variable("v", [2], device=device)
    assert v.device.type == "cpu"


def test_device_from_scope():
    with ts.variable_scope("d", device="/cpu:0") as scope:
        assert scope.device == torch.device("cpu", 0)
        v = ts.get_variable("v", [2])
    assert v.device.type == "cpu"


def test_bad_device():
    with pytest.raises(
        ValueError, match=r"device of variable 'v' 'nonsense' is not a device PyTorch knows"
    ):
        ts.get_variable("v", [2], device="nonsense")
    with pytest.raises(
        TypeError, match=r"device of variable 'v' must be a str, int or torch.device"
    ):
        ts.get_variable("v", [2], device=1.5)


def test_default_device_is_torch_default():
    with torch.device("meta"):
        v = ts.get_variable("v", [2])
    assert v.device.type == "meta"


# -- constraints ---------------------------------------------------------------------------------


def test_apply_constraints_projects_in_place():
    w = ts.get_variable("w", initializer=[-2.0, 0.5, 2.0], constraint=lambda v: v.clamp(-1, 1))
    u = ts.get_variable("u", initializer=[-2.0, 2.0])
    ts.apply_constraints()
    assert w.detach().tolist() == [-1.0, 0.5, 1.0]
    assert u.detach().tolist() == [-2.0, 2.0]


def test_constraint_from_scope():
    with ts.variable_scope("c", constraint=lambda v: v.clamp(min=0)):
        w = ts.get_variable("w", initializer=[-1.0, 1.0])
        with ts.variable_scope("inner"):
            x = ts.get_variable("x", initializer=[-3.0])
    ts.apply_constraints()
    assert w.detach().tolist() == [0.0, 1.0]
    assert x.item() == 0.0


def test_constraint_hook_after_optimizer_step():
    def unit_norm(v):
        return v / v.norm().clamp(min=1.0)

    w = ts.get_variable("w", initializer=[0.6, 0.8], constraint=unit_norm)
    opt = torch.optim.SGD(ts.trainable_variables(), lr=1.0)
    handle = ts.register_constraint_hook(opt)
    for _ in range(3):
        opt.zero_grad()
        (-(w * torch.tensor([3.0, 4.0])).sum()).backward()
        opt.step()
        assert w.norm().item() <= 1.0 + 1e-6
    torch.testing.assert_close(w.detach(), torch.tensor([0.6, 0.8]))
    handle.remove()
    opt.zero_grad()
    (-(w * torch.tensor([3.0, 4.0])).sum()).backward()
    opt.step()
    assert w.norm().item() > 1.0


def test_constraint_hook_for_another_store():
    store = ts.VariableStore()
    with store.as_default():
        w = ts.get_variable("w", initializer=[5.0], constraint=lambda v: v.clamp(max=1))
    opt = torch.optim.SGD(store.parameters(), lr=0.1)
    ts.register_constraint_hook(opt, store)
    w.sum().backward()
    opt.step()
    assert w.item() == 1.0


def test_constraint_must_be_callable():
    with pytest.raises(TypeError, match=r"constraint of variable 'w' must be callable"):
        ts.get_variable("w", [1], constraint=3)
    with pytest.raises(TypeError, match=r"constraint must be callable"):
        ts.variable_scope("s", constraint=3)
    with pytest.raises(TypeError, match=r"store must be a ts.VariableStore"):
        ts.apply_constraints(3)


# -- the dtype rule ------------------------------------------------------------------------------


def test_dtype_from_scope_on_creation():
    with ts.variable_scope("h", dtype=torch.float64):
        v = ts.get_variable("v", [2])
        i = ts.get_variable("i", [2], dtype=torch.int32)
        with ts.variable_scope("inner"):
            w = ts.get_variable("w", [2])
    assert v.dtype == torch.float64 and i.dtype == torch.int32 and w.dtype == torch.float64


def test_dtype_on_reuse_is_the_argument_else_the_scope_dtype():
    with ts.variable_scope("m"):
        v = ts.get_variable("v", [2], dtype=torch.float64)
    # No argument and no scope dtype: nothing to compare, the variable comes back.
    with ts.variable_scope("m", reuse=True):
        assert ts.get_variable("v", [2]) is v
        assert ts.get_variable("v", [2], dtype=torch.float64) is v
    # The scope set a dtype: that is the requested one.
    with (
        ts.variable_scope("m", reuse=True, dtype=torch.float16),
        pytest.raises(
            ValueError, match=r"specified dtype torch.float16 and found dtype torch.float64"
        ),
    ):
        ts.get_variable("v", [2])
    # The argument wins over the scope's dtype.
    with ts.variable_scope("m", reuse=True, dtype=torch.float16):
        assert ts.get_variable("v", [2], dtype=torch.float64) is v
    # Same under AUTO_REUSE.
    with (
        ts.variable_scope("m", reuse=ts.AUTO_REUSE, dtype=torch.float32),
        pytest.raises(
            ValueError, match=r"specified dtype torch.float32 and found dtype torch.float64"
        ),
    ):
        ts.get_variable("v")


def test_default_dtype_follows_torch_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        v = ts.get_variable("v", [2])
    finally:
        torch.set_default_dtype(previous)
    assert v.dtype == torch.float64


def test_variable_scope_get_variable_method():
    with ts.variable_scope("outer") as outer:
        pass
    with ts.variable_scope("elsewhere"):
        v = outer.get_variable("v", [1])
    assert ts.name_of(v) == "outer/v"


@pytest.mark.parametrize(
    ("value", "dtype", "message"),
    [
        (-1, torch.uint8, r"-1 would become 255"),
        (300, torch.int8, r"300 would become 44"),
        (3, torch.bool, r"3 would become True"),
    ],
)
def test_constant_initializer_refused_like_a_value_initializer(value, dtype, message):
    with pytest.raises(TypeError, match=r"^constant_initializer value .*" + message + "(.|\n)*'w'"):
        ts.get_variable("w", [2], initializer=ts.constant_initializer(value), dtype=dtype)
    assert "w" not in ts.get_default_store()


def test_truncated_normal_variable_on_meta():
    with ts.variable_scope("x", initializer=ts.variance_scaling_initializer(2.0)):
        k = ts.get_variable("k", [3, 3, 8, 8], device="meta")
    g = ts.get_variable("g", [4, 4], initializer=ts.glorot_normal_initializer(), device="meta")
    assert k.device.type == "meta" and g.device.type == "meta"


def test_apply_constraints_includes_non_trainable_variables():
    ema = ts.get_variable(
        "ema", initializer=[3.0], trainable=False, constraint=lambda v: v.clamp(0, 1)
    )
    ts.apply_constraints()
    assert ema.item() == 1.0


def test_constraint_hook_applies_only_the_optimizers_variables():
    # A GAN: the generator's optimizer must not project the discriminator's weights,
    # nor a variable no optimizer holds (TF applies a constraint in the variable's update).
    g = ts.get_variable("gen/w", initializer=[0.5], constraint=lambda v: v.clamp(-1, 0))
    d = ts.get_variable("disc/w", initializer=[5.0], constraint=lambda v: v.clamp(-1, 1))
    ema = ts.get_variable(
        "stats/ema", initializer=[3.0], trainable=False, constraint=lambda v: v.clamp(0, 1)
    )
    opt_g = torch.optim.SGD([g], lr=0.1)
    ts.register_constraint_hook(opt_g)
    (g * 2).sum().backward()
    opt_g.step()
    assert g.item() == 0.0
    assert d.item() == 5.0 and ema.item() == 3.0
    opt_d = torch.optim.SGD([d], lr=0.1)
    ts.register_constraint_hook(opt_d)
    d.sum().backward()
    opt_d.step()
    assert d.item() == 1.0 and ema.item() == 3.0


def test_constraint_hook_follows_added_param_groups():
    a = ts.get_variable("a", initializer=[5.0], constraint=lambda v: v.clamp(max=1))
    b = ts.get_variable("b", initializer=[5.0], constraint=lambda v: v.clamp(max=1))
    opt = torch.optim.SGD([a], lr=0.0)
    ts.register_constraint_hook(opt)
    opt.step()
    assert (a.item(), b.item()) == (1.0, 5.0)
    opt.add_param_group({"params": [b]})
    opt.step()
    assert b.item() == 1.0


def test_constraint_returning_another_shape_is_refused_and_changes_nothing():
    w = ts.get_variable("w", initializer=[-3.0, 4.0], constraint=lambda v: v.clamp(min=0))
    u = ts.get_variable("u", initializer=[3.0, 4.0], constraint=lambda v: v.norm())
    with pytest.raises(
        ValueError,
        match=r"constraint .* of variable 'u' returned a tensor of shape \[\], but the "
        r"variable's shape is \[2\].*No variable was changed",
    ):
        ts.apply_constraints()
    assert w.tolist() == [-3.0, 4.0] and u.tolist() == [3.0, 4.0]


def test_constraint_returning_none_is_refused_and_changes_nothing():
    w = ts.get_variable("w", initializer=[-3.0, 4.0], constraint=lambda v: v.clamp(min=0))
    ts.get_variable("n", initializer=[1.0], constraint=lambda v: None)
    x = ts.get_variable("x", initializer=[-3.0], constraint=lambda v: v.clamp(min=0))
    with pytest.raises(
        TypeError,
        match=r"constraint .* of variable 'n' returned NoneType None; .* tensor of shape \[1\]",
    ):
        ts.apply_constraints()
    assert w.tolist() == [-3.0, 4.0] and x.tolist() == [-3.0]


def test_constraint_returning_a_smaller_tensor_is_refused_by_the_hook():
    w = ts.get_variable("w", initializer=[1.0, 2.0], constraint=lambda v: v[:1])
    opt = torch.optim.SGD([w], lr=0.0)
    ts.register_constraint_hook(opt)
    with pytest.raises(ValueError, match=r"variable 'w' returned a tensor of shape \[1\]"):
        opt.step()
    assert w.tolist() == [1.0, 2.0]
