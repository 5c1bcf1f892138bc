"""variable_scope, name_scope and custom getters: nesting, capture, default names,
reuse inheritance, inherited defaults, name scopes of operations, argument errors."""

import re

import numpy as np
import pytest
import torch

import torchscope as ts

# -- nesting and capture -------------------------------------------------------------------------


def test_root_scope():
    scope = ts.get_variable_scope()
    assert scope.name == ""
    assert scope.reuse is False
    assert ts.get_name_scope() == ""


def test_nesting_and_restoring():
    with ts.variable_scope("a") as a:
        assert a.name == "a"
        assert ts.get_variable_scope() is a
        with ts.variable_scope("b/c") as bc:
            assert bc.name == "a/b/c"
            assert ts.get_name_scope() == "a/b/c"
            v = ts.get_variable("v", [1])
        assert ts.get_variable_scope() is a
    assert ts.get_variable_scope().name == ""
    assert ts.name_of(v) == "a/b/c/v"


def test_scope_restored_after_exception():
    with pytest.raises(RuntimeError, match=r"boom"), ts.variable_scope("a"), ts.name_scope("n"):
        raise RuntimeError("boom")
    assert ts.get_variable_scope().name == ""
    assert ts.get_name_scope() == ""


def test_captured_scope_inside_other_scopes():
    with ts.variable_scope("foo") as foo:
        v = ts.get_variable("v", [1])
    with ts.variable_scope("x"), ts.variable_scope("y"):
        with ts.variable_scope(foo, reuse=True) as again:
            assert again.name == "foo"
            assert ts.get_variable("v") is v
            with ts.variable_scope("inner") as inner:
                assert inner.name == "foo/inner"
        assert ts.get_variable_scope().name == "x/y"


def test_captured_scope_reports_its_original_name_scope():
    with ts.name_scope("ns"), ts.variable_scope("foo") as foo:
        assert foo.original_name_scope == "ns/foo/"
    with ts.variable_scope("bar"), ts.variable_scope(foo) as again:
        assert again.original_name_scope == "ns/foo/"
        assert ts.get_name_scope() == "bar"


def test_same_variable_scope_object_cannot_be_entered_twice():
    cm = ts.variable_scope("a")
    with cm, pytest.raises(RuntimeError, match=r"already open"):
        cm.__enter__()
    ns = ts.name_scope("n")
    with ns, pytest.raises(RuntimeError, match=r"already open"):
        ns.__enter__()


def test_repr():
    with ts.variable_scope("foo", reuse=ts.AUTO_REUSE) as foo:
        assert repr(foo) == "VariableScope(name='foo', reuse=ts.AUTO_REUSE)"


# -- default_name --------------------------------------------------------------------------------


def test_default_name_counts_like_tensorflow():
    names = []
    for _ in range(3):
        with ts.variable_scope(None, default_name="layer") as scope:
            names.append(scope.name)
            names.append(ts.get_name_scope())
    assert names == ["layer", "layer", "layer_1", "layer_1", "layer_2", "layer_2"]


def test_default_name_counts_explicitly_opened_scopes():
    with ts.variable_scope("layer"):
        pass
    with ts.variable_scope(None, default_name="layer") as scope:
        assert scope.name == "layer_1"


def test_default_name_counter_restarts_when_parent_is_reopened():
    got = []
    for _ in range(2):
        with ts.variable_scope("outer"):
            for _ in range(2):
                with ts.variable_scope(None, default_name="layer") as scope:
                    got.append(scope.name)
                    got.append(ts.get_name_scope())
    assert got == ["outer/layer", "outer/layer", "outer/layer_1", "outer/layer_1"] * 2


def test_default_name_counters_are_per_parent():
    with ts.variable_scope("a"), ts.variable_scope(None, default_name="l") as x:
        pass
    with ts.variable_scope("b"), ts.variable_scope(None, default_name="l") as y:
        pass
    assert (x.name, y.name) == ("a/l", "b/l")


def test_default_name_scope_is_unique_among_name_scopes():
    # TensorFlow opens name_scope(default_name), which is made unique among the name
    # scopes; the variable scope's name comes from the variable-scope counters.
    with ts.name_scope("layer"):
        pass
    with ts.variable_scope(None, default_name="layer") as first:
        assert (first.name, ts.get_name_scope(), first.original_name_scope) == (
            "layer",
            "layer_1",
            "layer_1/",
        )
        assert ts.name_of(ts.get_variable("w", [1])) == "layer/w"
    with ts.variable_scope(None, default_name="layer") as second:
        assert (second.name, ts.get_name_scope()) == ("layer_1", "layer_2")
    with ts.name_scope("layer") as ns:
        assert ns == "layer_3/"


def test_default_name_scope_inside_a_captured_scope_is_unique():
    with ts.variable_scope(None, default_name="layer") as layer:
        pass
    with ts.variable_scope(layer), ts.variable_scope(None, default_name="layer") as inner:
        assert (inner.name, ts.get_name_scope()) == ("layer/layer", "layer_1")


def test_default_name_without_auxiliary_name_scope_leaves_the_name_scope():
    with ts.name_scope("n"):
        with ts.variable_scope(None, default_name="d", auxiliary_name_scope=False) as d:
            assert (d.name, ts.get_name_scope()) == ("d", "n")
        with ts.name_scope("d") as ns:
            assert ns == "n/d/"


def test_default_name_ignored_when_a_name_is_given():
    with ts.variable_scope("given", default_name="layer") as scope:
        assert scope.name == "given"


@pytest.mark.parametrize("reuse", [True, ts.AUTO_REUSE])
def test_default_name_with_reuse_is_an_error(reuse):
    with pytest.raises(ValueError, match=r"default_name='layer'.*cannot use reuse"):
        ts.variable_scope(None, default_name="layer", reuse=reuse)


def test_default_name_inside_reusing_scope_inherits_reuse():
    with ts.variable_scope("r", reuse=True), ts.variable_scope(None, default_name="d") as d:
        assert d.reuse is True


# -- reuse inheritance ---------------------------------------------------------------------------


def test_reuse_inherited_from_parent():
    with ts.variable_scope("a", reuse=ts.AUTO_REUSE):
        with ts.variable_scope("b") as b:
            assert b.reuse is ts.AUTO_REUSE
        with ts.variable_scope("c", reuse=False) as c:
            assert c.reuse is ts.AUTO_REUSE
        with ts.variable_scope("d", reuse=True) as d:
            assert d.reuse is True
    with ts.variable_scope("a", reuse=True), ts.variable_scope("b", reuse=ts.AUTO_REUSE) as b:
        assert b.reuse is ts.AUTO_REUSE


def test_false_behaves_as_none():
    with ts.variable_scope("a", reuse=False) as a:
        assert a.reuse is False
    with ts.variable_scope("a", reuse=True), ts.variable_scope("b", reuse=False) as b:
        assert b.reuse is True


def test_captured_scope_keeps_its_own_reuse():
    with ts.variable_scope("plain") as plain:
        pass
    with ts.variable_scope("sharing", reuse=True) as sharing:
        pass
    with ts.variable_scope("outer", reuse=True), ts.variable_scope(plain) as s:
        assert s.reuse is False  # its own flag, not the parent's
    with ts.variable_scope("outer2"):
        with ts.variable_scope(sharing) as s:
            assert s.reuse is True
        with ts.variable_scope(sharing, reuse=False) as s:
            assert s.reuse is True
        with ts.variable_scope(plain, reuse=ts.AUTO_REUSE) as s:
            assert s.reuse is ts.AUTO_REUSE
        with ts.variable_scope(plain, reuse=None) as s:
            assert s.reuse is False


def test_reuse_variables_switches_on_for_the_rest_of_the_scope():
    with ts.variable_scope("a") as a:
        v = ts.get_variable("v", [1])
        with ts.variable_scope("sub") as sub:
            assert sub.reuse is False
            w = ts.get_variable("w", [1])
        a.reuse_variables()
        assert ts.get_variable_scope().reuse is True
        assert ts.get_variable("v") is v
        with ts.variable_scope("sub"):
            assert ts.get_variable("w") is w
    # A string re-entry starts from the parent's flag again.
    with ts.variable_scope("a") as again:
        assert again.reuse is False
    # The captured object itself was switched.
    with ts.variable_scope(a) as captured:
        assert captured.reuse is True


# -- inherited defaults --------------------------------------------------------------------------


def test_initializer_regularizer_dtype_device_inherited_and_overridden():
    reg = lambda v: v.sum()  # noqa: E731
    reg2 = lambda v: 2 * v.sum()  # noqa: E731
    init = ts.constant_initializer(0.5)
    with ts.variable_scope(
        "a", initializer=init, regularizer=reg, dtype=torch.float64, device="cpu"
    ) as a:
        assert (a.initializer, a.regularizer, a.dtype, a.device) == (
            init,
            reg,
            torch.float64,
            torch.device("cpu"),
        )
        with ts.variable_scope("b") as b:
            assert (b.initializer, b.regularizer, b.dtype, b.device) == (
                init,
                reg,
                torch.float64,
                torch.device("cpu"),
            )
            v = ts.get_variable("v", [2])
            with ts.variable_scope("c", regularizer=reg2, dtype=torch.float16) as c:
                assert c.regularizer is reg2 and c.dtype == torch.float16
                assert c.initializer is init
                w = ts.get_variable("w", [2])
    assert v.dtype == torch.float64 and torch.all(v == 0.5)
    assert w.dtype == torch.float16 and torch.all(w == 0.5)
    losses = ts.regularization_losses()
    assert [loss.item() for loss in losses] == [1.0, 2.0]


def test_scope_dtype_defaults_to_torch_default():
    with ts.variable_scope("a") as a:
        assert a.dtype == torch.get_default_dtype()
        assert a.initializer is None and a.regularizer is None and a.device is None


def test_captured_scope_brings_its_own_defaults():
    with ts.variable_scope("a", initializer=ts.constant_initializer(3.0)) as a:
        pass
    with ts.variable_scope("b", initializer=ts.constant_initializer(4.0)):
        with ts.variable_scope(a):
            v = ts.get_variable("v", [1])
        with ts.variable_scope(a, initializer=ts.constant_initializer(5.0)):
            w = ts.get_variable("w", [1])
    assert v.item() == 3.0 and w.item() == 5.0


def test_setters():
    with ts.variable_scope("s") as s:
        s.set_initializer(ts.ones_initializer())
        s.set_dtype(torch.float64)
        s.set_regularizer(lambda v: v.sum())
        s.set_device("/cpu:0")
        v = ts.get_variable("v", [3])
        s.set_custom_getter(lambda getter, name, *a, **k: getter(name, *a, **k) * 2)
        s.reuse_variables()
        doubled = ts.get_variable("v")
    assert v.dtype == torch.float64 and torch.all(v == 1.0)
    assert torch.all(doubled == 2.0)
    assert ts.regularization_loss().item() == 3.0
    with pytest.raises(TypeError, match=r"initializer must be callable"):
        s.set_initializer("3")  # a number is a value (as in TensorFlow); a str is not
    with pytest.raises(TypeError, match=r"dtype must be a torch.dtype"):
        s.set_dtype(3)
    with pytest.raises(ValueError, match=r"custom_getter must be callable"):
        s.set_custom_getter(3)


# -- argument errors -----------------------------------------------------------------------------


def test_wrong_argument_types():
    with pytest.raises(
        TypeError, match=r"name_or_scope must be a str, a VariableScope or None, got int"
    ):
        ts.variable_scope(3)
    with pytest.raises(
        ValueError, match=r"reuse must be True, False, None or ts.AUTO_REUSE, got str 'yes'"
    ):
        ts.variable_scope("a", reuse="yes")
    with pytest.raises(ValueError, match=r"reuse must be"):
        ts.variable_scope("a", reuse=1)
    with pytest.raises(ValueError, match=r"custom_getter must be callable"):
        ts.variable_scope("a", custom_getter="getter")
    with pytest.raises(TypeError, match=r"needs name_or_scope, or default_name"):
        ts.variable_scope(None)
    with pytest.raises(TypeError, match=r"default_name.*must be a str, got int"):
        ts.variable_scope(None, default_name=3)
    with pytest.raises(TypeError, match=r"regularizer must be callable"):
        ts.variable_scope("a", regularizer=0.1)
    with pytest.raises(TypeError, match=r"initializer must be callable"):
        ts.variable_scope("a", initializer="0.1")
    with pytest.raises(TypeError, match=r"dtype must be a torch.dtype"):
        ts.variable_scope("a", dtype="nonsense")
    with pytest.raises(TypeError, match=r"auxiliary_name_scope must be a bool"):
        ts.variable_scope("a", auxiliary_name_scope="no")
    with pytest.raises(TypeError, match=r"name_scope's name must be a str"):
        ts.name_scope(3)


@pytest.mark.parametrize("bad", ["a.b", "a b", "", "/a", "a//b", "a/", "é"])
def test_bad_scope_names(bad):
    # A bare name is checked on entry (as TensorFlow's name scope does), when its scope is
    # made; with overrides, when the variable_scope is built. Either way nothing changes.
    with pytest.raises(ValueError, match=r"variable_scope name"), ts.variable_scope(bad):
        pass
    assert ts.get_variable_scope().name == "" and ts.get_name_scope() == ""
    with pytest.raises(ValueError, match=r"variable_scope name"):
        ts.variable_scope(bad, initializer=ts.zeros_initializer())
    with ts.variable_scope("outer"):
        with pytest.raises(ValueError, match=r"variable_scope name"), ts.variable_scope(bad):
            pass
        assert ts.get_variable_scope().name == "outer" and ts.get_name_scope() == "outer"
        assert bad not in ts.get_variable_scope()._children


@pytest.mark.parametrize("bad", ["_a", "-a", ">a", "\\a", "_"])
def test_scope_names_at_the_root_start_with_a_letter_or_digit(bad):
    # TensorFlow checks a scope opened at the root against its op-name rule: the name
    # begins the full names inside, and a full name starts with a letter or digit.
    match = rf"name {re.escape(repr(bad))} is not valid at the root: .* letter or digit"
    for make in (
        lambda: ts.variable_scope(bad),
        lambda: ts.variable_scope(bad, initializer=ts.zeros_initializer()),
        lambda: ts.variable_scope(bad, auxiliary_name_scope=False),
        lambda: ts.variable_scope(None, default_name=bad),
        lambda: ts.name_scope(bad),
        lambda: ts.name_scope(None, default_name=bad),
    ):
        with pytest.raises(ValueError, match=match), make():
            pass
        assert ts.get_variable_scope().name == "" and ts.get_name_scope() == ""
    # An absolute name scope is a full name, wherever it is opened.
    with ts.variable_scope("outer"), pytest.raises(ValueError, match=match):
        ts.name_scope(bad + "/")
    # At the root of name scopes only (TensorFlow's rule), or of variable names only.
    with ts.variable_scope("v", auxiliary_name_scope=False), pytest.raises(ValueError, match=match):
        ts.variable_scope(bad).__enter__()
    with ts.name_scope("n"), pytest.raises(ValueError, match=match):
        ts.variable_scope(bad).__enter__()
    assert ts.get_variable_scope().name == "" and ts.get_name_scope() == ""
    assert len(ts.get_default_store()) == 0


@pytest.mark.parametrize("name", ["_a", "-a", "_"])
def test_scope_names_below_the_root_may_start_with_underscore_or_dash(name):
    with ts.variable_scope("o"):
        for _ in range(2):  # the second entry comes from the re-entry cache
            with ts.variable_scope(name) as scope, ts.name_scope(name) as ns:
                assert scope.name == f"o/{name}"
                assert ns.startswith(f"o/{name}/{name}")
        with ts.variable_scope(None, default_name=name) as scope:
            assert scope.name == f"o/{name}_1"
        v = ts.get_variable(f"{name}/v", [1])
    assert ts.name_of(v) == f"o/{name}/v"
    # A name checked below the root is still refused at the root.
    with pytest.raises(ValueError, match=r"not valid at the root"), ts.variable_scope(name):
        pass


def test_bad_name_scope_names():
    with pytest.raises(ValueError, match=r"name_scope name 'a\.b' is not valid"):
        ts.name_scope("a.b")
    with pytest.raises(ValueError, match=r"empty path component"):
        ts.name_scope("a//")


def test_tensorflow_values_argument_is_accepted():
    x = torch.zeros(1)
    with ts.variable_scope("a", values=[x]) as a, ts.name_scope("n", values=[x]) as n:
        assert (a.name, n) == ("a", "a/n/")


def test_tensorflow_positional_values_list_is_explained():
    x = torch.zeros(1)
    with pytest.raises(TypeError, match=r"'values' is not needed"):
        ts.variable_scope("a", None, [x])


# -- name scopes ---------------------------------------------------------------------------------


def test_name_scope_uniquifies_siblings():
    got = []
    for _ in range(3):
        with ts.name_scope("foo") as ns:
            got.append((ns, ts.get_name_scope()))
    assert got == [("foo/", "foo"), ("foo_1/", "foo_1"), ("foo_2/", "foo_2")]


def test_name_scope_uniqueness_is_case_insensitive_and_skips_taken_names():
    with ts.name_scope("Foo") as a:
        pass
    with ts.name_scope("foo_1") as b:
        pass
    with ts.name_scope("foo") as c:
        pass
    assert (a, b, c) == ("Foo/", "foo_1/", "foo_2/")


def test_name_scope_nests_and_counters_are_per_parent():
    with ts.name_scope("a"):
        with ts.name_scope("x") as x1:
            pass
        with ts.name_scope("x") as x2:
            pass
    with ts.name_scope("b"), ts.name_scope("x") as x3:
        pass
    assert (x1, x2, x3) == ("a/x/", "a/x_1/", "b/x/")


def test_name_scope_absolute_and_root():
    with ts.name_scope("foo"), ts.name_scope("bar"):
        with ts.name_scope("foo/") as ns:
            assert ns == "foo/" and ts.get_name_scope() == "foo"
        with ts.name_scope("x/y/") as ns:
            assert ts.get_name_scope() == "x/y"
        with ts.name_scope(None) as ns:
            assert ns == "" and ts.get_name_scope() == ""
        with ts.name_scope("") as ns:
            assert ts.get_name_scope() == ""
        assert ts.get_name_scope() == "foo/bar"


def test_name_scope_does_not_change_variable_names():
    with ts.variable_scope("vs"), ts.name_scope("ns"):
        v = ts.get_variable("v", [1])
        assert ts.get_variable_scope().name == "vs"
    assert ts.name_of(v) == "vs/v"


def test_name_scope_with_default_name():
    with ts.name_scope(None, default_name="dflt") as ns:
        assert ns == "dflt/"


def test_variable_scope_name_scope_is_not_uniquified():
    # torchscope's documented rule (scopes.py): re-entering a variable scope names its
    # operations the same way every time.
    for reuse in (None, True, ts.AUTO_REUSE):
        with ts.variable_scope("m", reuse=reuse) as m:
            assert ts.get_name_scope() == "m"
            assert m.original_name_scope == "m/"


def test_variable_scope_takes_its_name_among_name_scope_siblings():
    with ts.variable_scope("m"):
        pass
    with ts.name_scope("m") as ns:
        assert ns == "m_1/"


def test_variable_scope_inside_name_scope():
    with ts.name_scope("ns"), ts.variable_scope("vs") as vs:
        assert ts.get_name_scope() == "ns/vs"
        assert vs.name == "vs"
        assert vs.original_name_scope == "ns/vs/"


def test_auxiliary_name_scope_false():
    with ts.name_scope("outer"), ts.variable_scope("vs", auxiliary_name_scope=False) as vs:
        assert vs.name == "vs"
        assert ts.get_name_scope() == "outer"
        assert vs.original_name_scope == "outer/"
        v = ts.get_variable("v", [1])
    assert ts.name_of(v) == "vs/v"


def test_auxiliary_name_scope_false_at_root_and_reentering_original():
    with ts.variable_scope("vs", auxiliary_name_scope=False) as vs:
        assert ts.get_name_scope() == ""
        assert vs.original_name_scope == ""
    with ts.variable_scope("m") as m:
        pass
    with ts.variable_scope(m, auxiliary_name_scope=False), ts.name_scope(m.original_name_scope):
        assert ts.get_name_scope() == "m"


# -- custom getters ------------------------------------------------------------------------------


def test_custom_getter_receives_tensorflow_keywords():
    seen = {}

    def getter(getter, name, *args, **kwargs):
        seen.update(kwargs, name=name)
        return getter(name, *args, **kwargs)

    reg = lambda v: v.sum()  # noqa: E731
    con = lambda v: v.clamp(0, 1)  # noqa: E731
    init = ts.zeros_initializer()
    with ts.variable_scope("g", custom_getter=getter, regularizer=reg, constraint=con):
        v = ts.get_variable("v", [2], initializer=init, trainable=False)
    assert ts.name_of(v) == "g/v"
    # TensorFlow's _VariableStore.get_variable passes all of its keywords, always (those
    # torchscope has no use for with TensorFlow's defaults), and constraint to a getter
    # that takes it; torchscope adds device, also only to a getter that takes it (this
    # one has **kwargs).
    assert seen == {
        "name": "g/v",
        "shape": [2],
        "dtype": None,
        "initializer": init,
        "regularizer": reg,
        "reuse": False,
        "trainable": False,
        "collections": None,
        "caching_device": None,
        "partitioner": None,
        "validate_shape": True,
        "use_resource": None,
        "synchronization": None,
        "aggregation": None,
        "constraint": con,
        "device": None,
    }


def _tf_explicit_getter(
    getter,
    name,
    shape=None,
    dtype=None,
    initializer=None,
    regularizer=None,
    reuse=None,
    trainable=None,
    collections=None,
    caching_device=None,
    partitioner=None,
    validate_shape=True,
    use_resource=None,
    synchronization=None,
    aggregation=None,
):
    """A getter ported from TensorFlow: every keyword TensorFlow passes, no **kwargs."""
    v = getter(
        name,
        shape=shape,
        dtype=dtype,
        initializer=initializer,
        regularizer=regularizer,
        reuse=reuse,
        trainable=trainable,
        collections=collections,
    )
    return v * 2


def test_getter_with_tensorflow_signature_and_no_kwargs_works():
    with ts.variable_scope("e", custom_getter=_tf_explicit_getter):
        doubled = ts.get_variable("v", [2], initializer=ts.ones_initializer())
    assert torch.equal(doubled, torch.full((2,), 2.0))
    assert list(ts.get_default_store()) == ["e/v"]


def test_device_and_constraint_apply_through_a_getter_that_does_not_take_them():
    # The getter never sees them; the real getter at the end of the chain has them bound.
    con = lambda v: v.clamp(max=0.5)  # noqa: E731
    with ts.variable_scope("e", custom_getter=_tf_explicit_getter, device="cpu", constraint=con):
        ts.get_variable("v", [2], initializer=ts.ones_initializer())
    v = ts.get_default_store()["e/v"]
    assert v.device == torch.device("cpu")
    ts.apply_constraints()
    assert torch.equal(v.detach(), torch.full((2,), 0.5))


def test_extras_go_to_a_getter_that_names_them():
    seen = {}

    def takes_constraint(getter, name, constraint=None, **tf):
        seen["constraint"] = constraint
        return getter(name, constraint=constraint, **tf)

    def takes_device(getter, name, *, device=None, shape=None, **tf):
        seen["device"] = device
        return getter(name, shape=shape, device=device, **tf)

    con = lambda v: v  # noqa: E731
    with ts.variable_scope("a", custom_getter=takes_constraint, constraint=con):
        ts.get_variable("v", [1])
    with ts.variable_scope("b", custom_getter=takes_device, device="cpu"):
        ts.get_variable("v", [1])
    assert seen == {"constraint": con, "device": torch.device("cpu")}


def test_composed_getters_each_get_only_the_extras_they_take():
    order = []

    def forwarding(getter, name, *args, **kwargs):
        order.append(("forwarding", sorted({"device", "constraint"} & set(kwargs))))
        return getter(name, *args, **kwargs)  # forwards device and constraint outwards

    def explicit(getter, name, shape=None, dtype=None, initializer=None, regularizer=None,
                 reuse=None, trainable=None, collections=None, caching_device=None,
                 partitioner=None, validate_shape=True, use_resource=None,
                 synchronization=None, aggregation=None):  # fmt: skip
        order.append(("explicit", []))
        return getter(name, shape=shape, dtype=dtype, reuse=reuse, trainable=trainable)

    with (
        ts.variable_scope("o", custom_getter=explicit),
        ts.variable_scope("i", custom_getter=forwarding),
    ):
        v = ts.get_variable("v", [1])
    assert order == [("forwarding", ["constraint", "device"]), ("explicit", [])]
    assert ts.name_of(v) == "o/i/v"
    order.clear()
    with (
        ts.variable_scope("p", custom_getter=forwarding),
        ts.variable_scope("q", custom_getter=explicit),
        ts.variable_scope("r", custom_getter=forwarding),
    ):
        ts.get_variable("v", [1])
    # The outermost one gets what the explicit one forwarded: no extras.
    assert order == [
        ("forwarding", ["constraint", "device"]),
        ("explicit", []),
        ("forwarding", []),
    ]


class _ScaleGetter:
    def __init__(self, scale):
        self.scale = scale

    def __call__(self, getter, name, shape=None, dtype=None, initializer=None, regularizer=None,
                 reuse=None, trainable=None, collections=None, caching_device=None,
                 partitioner=None, validate_shape=True, use_resource=None,
                 synchronization=None, aggregation=None):  # fmt: skip
        return getter(name, shape=shape, dtype=dtype, initializer=initializer, reuse=reuse) * (
            self.scale
        )

    def method(self, getter, name, *args, constraint=None, **kwargs):
        assert "device" in kwargs  # **kwargs: everything
        return getter(name, *args, constraint=constraint, **kwargs) * self.scale


def test_getters_of_every_callable_kind_are_read_the_same_way():
    import functools

    def scaled(getter, name, shape=None, dtype=None, initializer=None, regularizer=None,
               reuse=None, trainable=None, collections=None, caching_device=None,
               partitioner=None, validate_shape=True, use_resource=None,
               synchronization=None, aggregation=None, scale=1.0):  # fmt: skip
        return getter(name, shape=shape, dtype=dtype, initializer=initializer) * scale

    getters = {
        "obj": _ScaleGetter(3.0),
        "method": _ScaleGetter(4.0).method,
        "partial": functools.partial(scaled, scale=5.0),
        "lambda": lambda getter, name, *a, **k: getter(name, *a, **k) * 6.0,
    }
    for key, getter in getters.items():
        with ts.variable_scope(key, custom_getter=getter):
            value = ts.get_variable("v", [1], initializer=ts.ones_initializer())
        assert value.item() == {"obj": 3.0, "method": 4.0, "partial": 5.0, "lambda": 6.0}[key]


def test_getter_signature_is_read_once_per_function(monkeypatch):
    from torchscope import _getters as _variable_scope

    with ts.variable_scope("e", custom_getter=_tf_explicit_getter):
        ts.get_variable("v", [1])
    assert _variable_scope._EXTRAS_TAKEN[_tf_explicit_getter] == ()
    reads = []
    real = _variable_scope._EXTRAS_TAKEN

    class Counting(dict):
        def get(self, key, default=None):
            value = real.get(key, default)
            reads.append(value)
            return value

        def __setitem__(self, key, value):
            raise AssertionError(f"read again: {key}")

    monkeypatch.setattr(_variable_scope, "_EXTRAS_TAKEN", Counting())
    with ts.variable_scope("e", reuse=True, custom_getter=_tf_explicit_getter):
        for _ in range(3):
            ts.get_variable("v", [1])
    assert reads == [(), (), ()]


def test_custom_getter_sees_reuse_flag():
    flags = []

    def getter(getter, name, *args, **kwargs):
        flags.append(kwargs["reuse"])
        return getter(name, *args, **kwargs)

    with ts.variable_scope("g", custom_getter=getter):
        ts.get_variable("v", [1])
    with ts.variable_scope("g", custom_getter=getter, reuse=True):
        ts.get_variable("v", [1])
    with ts.variable_scope("g", custom_getter=getter, reuse=ts.AUTO_REUSE):
        ts.get_variable("v", [1])
    assert flags == [False, True, ts.AUTO_REUSE]


def test_custom_getters_compose_inner_first():
    order = []

    def make(tag):
        def getter(getter, name, *args, **kwargs):
            order.append(f"{tag} in")
            value = getter(name, *args, **kwargs)
            order.append(f"{tag} out")
            return value

        return getter

    with (
        ts.variable_scope("a", custom_getter=make("outer")),
        ts.variable_scope("b"),  # inherits the outer getter
        ts.variable_scope("c", custom_getter=make("inner")),
    ):
        v = ts.get_variable("v", [1])
    assert order == ["inner in", "outer in", "outer out", "inner out"]
    assert ts.name_of(v) == "a/b/c/v"


def test_three_getters_compose():
    order = []

    def make(tag):
        def getter(getter, name, *args, **kwargs):
            order.append(tag)
            return getter(name, *args, **kwargs)

        return getter

    with (
        ts.variable_scope("a", custom_getter=make(1)),
        ts.variable_scope("b", custom_getter=make(2)),
        ts.variable_scope("c", custom_getter=make(3)),
    ):
        ts.get_variable("v", [1])
    assert order == [3, 2, 1]


def test_custom_getter_can_rename_and_transform():
    def prefix_getter(getter, name, *args, **kwargs):
        return getter(name + "_renamed", *args, **kwargs)

    with ts.variable_scope("g", custom_getter=prefix_getter):
        v = ts.get_variable("v", [2])
    assert ts.name_of(v) == "g/v_renamed"


def test_custom_getter_in_captured_scope():
    order = []

    def getter(getter, name, *args, **kwargs):
        order.append(name)
        return getter(name, *args, **kwargs)

    with ts.variable_scope("cap", custom_getter=getter) as cap:
        pass
    with ts.variable_scope("other"), ts.variable_scope(cap):
        ts.get_variable("v", [1])
    assert order == ["cap/v"]


def test_cast_on_read_getter_with_autograd():
    def cast_getter(getter, name, *args, dtype=None, **kwargs):
        var = getter(name, *args, dtype=torch.float32, **kwargs)
        return var.to(dtype) if dtype is not None else var

    with ts.variable_scope("mixed", custom_getter=cast_getter, dtype=torch.bfloat16):
        w = ts.get_variable("w", [4, 3])
        x = torch.randn(2, 4, dtype=torch.bfloat16)
        y = x @ w
    assert w.dtype == torch.bfloat16 and y.dtype == torch.bfloat16
    stored = ts.get_default_store()["mixed/w"]
    assert stored.dtype == torch.float32 and stored is not w
    y.float().sum().backward()
    assert stored.grad is not None and stored.grad.dtype == torch.float32
    torch.testing.assert_close(
        stored.grad, x.float().sum(0, keepdim=True).t().expand(4, 3), atol=0.05, rtol=0.05
    )
    # Reusing through the getter hands out a fresh cast of the same variable.
    with ts.variable_scope("mixed", custom_getter=cast_getter, dtype=torch.bfloat16, reuse=True):
        again = ts.get_variable("w", [4, 3])
    assert again.dtype == torch.bfloat16
    assert len(ts.get_default_store()) == 1


# -- collections through scopes ------------------------------------------------------------------


def test_scope_global_and_trainable_variables():
    with ts.variable_scope("enc") as enc:
        a = ts.get_variable("a", [1])
        b = ts.get_variable("b", [1], trainable=False)
    with ts.variable_scope("encoder"):
        ts.get_variable("c", [1])
    assert enc.global_variables() == [a, b]
    assert enc.trainable_variables() == [a]
    assert len(ts.get_variable_scope().global_variables()) == 3


# -- improper nesting ----------------------------------------------------------------------------


def _where():
    return ts.get_variable_scope().name, ts.get_name_scope()


def test_generator_closing_its_scope_inside_another_scope_raises():
    g = ts.variable_scope("g")

    def gen():
        with g:
            yield

    it = gen()
    next(it)
    with (
        pytest.raises(
            RuntimeError,
            match=r"^Improper nesting of variable_scope: closing 'g', which is not the innermost "
            r"open scope \(the current variable scope is 'g/h', not 'g'\); nothing was changed\.",
        ),
        ts.variable_scope("h"),
    ):
        next(it, None)
    # "h" closed normally; the generator's failed exit changed nothing: "g" is current.
    assert _where() == ("g", "g")
    g.__exit__(None, None, None)
    assert _where() == ("", "")


def test_exit_out_of_order_by_hand_raises_and_changes_nothing():
    a, b = ts.variable_scope("A"), ts.variable_scope("B")
    a.__enter__()
    b.__enter__()
    with pytest.raises(
        RuntimeError,
        match=r"closing 'A', which .* variable scope is 'A/B', not 'A'\)",
    ):
        a.__exit__(None, None, None)
    assert _where() == ("A/B", "A/B")
    b.__exit__(None, None, None)
    assert _where() == ("A", "A")
    a.__exit__(None, None, None)
    assert _where() == ("", "")
    with ts.variable_scope("A") as again:  # the counters were put back as well
        assert again.name == "A" and ts.get_name_scope() == "A"


def test_name_scope_exit_out_of_order_raises_and_changes_nothing():
    a, b = ts.name_scope("a"), ts.name_scope("b")
    a.__enter__()
    b.__enter__()
    with pytest.raises(
        RuntimeError,
        match=r"^Improper nesting of name_scope: closing 'a', .* name scope is 'a/b', not 'a'\)",
    ):
        a.__exit__(None, None, None)
    assert ts.get_name_scope() == "a/b"
    b.__exit__(None, None, None)
    a.__exit__(None, None, None)
    assert ts.get_name_scope() == ""


def test_name_scope_closed_while_a_variable_scope_inside_is_open_raises():
    with ts.variable_scope("cap") as cap:
        pass
    n = ts.name_scope("n")
    n.__enter__()
    inner = ts.variable_scope(cap)  # a captured scope leaves the name scope alone
    inner.__enter__()
    with pytest.raises(
        RuntimeError, match=r"name_scope: closing 'n', .* variable scope is 'cap', not the root\)"
    ):
        n.__exit__(None, None, None)
    assert _where() == ("cap", "n")
    inner.__exit__(None, None, None)
    n.__exit__(None, None, None)
    assert _where() == ("", "")


def test_variable_scope_closed_while_a_name_scope_inside_is_open_is_caught_by_the_name_scope():
    # variable_scope's exit tests the variable scope only (one identity test on the hot
    # path); the name scope left open finds the state changed when it closes.
    v, n = ts.variable_scope("v"), ts.name_scope("n")
    v.__enter__()
    n.__enter__()
    v.__exit__(None, None, None)
    assert _where() == ("", "")
    with pytest.raises(
        RuntimeError, match=r"name_scope: closing 'v/n', .* variable scope is the root, not 'v'\)"
    ):
        n.__exit__(None, None, None)
    assert _where() == ("", "")


def test_proper_nesting_of_every_kind_of_entry_closes_cleanly():
    with ts.variable_scope("m") as m:
        pass
    for _ in range(2):
        with (
            ts.variable_scope("a"),
            ts.name_scope("a/"),
            ts.variable_scope(m),
            ts.variable_scope(m),
            ts.name_scope(None),
            ts.name_scope(""),
            ts.variable_scope(None, default_name="d", initializer=ts.zeros_initializer()),
            ts.variable_scope(ts.get_variable_scope()),
            ts.name_scope("a/"),
        ):
            assert _where() == ("m/d", "a")
        assert _where() == ("", "")


# -- bounded bookkeeping -------------------------------------------------------------------------


def _training_step():
    with ts.variable_scope("model", reuse=ts.AUTO_REUSE):
        with ts.variable_scope("layer"):
            with ts.name_scope("attention") as attention:
                w = ts.get_variable("w", [4, 4])
                inner = ts.get_name_scope()
            with ts.name_scope("attention") as attention_1:
                pass
        with ts.variable_scope(None, default_name="block") as block:
            b = ts.get_variable("b", [4])
        with ts.name_scope("loss") as loss:
            pass
    return (attention, inner, attention_1, block.name, loss, ts.name_of(w), ts.name_of(b)), w, b


def _table_sizes():
    from torchscope import _context as _state

    def nodes(node):
        return sum(1 + nodes(child) for key, child in node.items() if key)

    context = _state.current()
    opened = context.opened
    tables, table = 0, context.outer if context.var_counts is None else context.var_counts
    while table is not None:
        tables += len(table)
        table = table[""]
    return len(context.name_counts or ()), nodes(opened.root) if opened else 0, tables


def test_reentering_scopes_keeps_names_and_tables_bounded():
    expected, w, b = _training_step()
    assert expected == (
        "model/layer/attention/",
        "model/layer/attention",
        "model/layer/attention_1/",
        "model/block",
        "model/loss/",
        "model/layer/w",
        "model/block/b",
    )
    for _ in range(9):
        _training_step()
    sizes_after_10 = _table_sizes()
    for i in range(100_000):
        names, w2, b2 = _training_step()
        if names != expected or w2 is not w or b2 is not b:
            pytest.fail(f"iteration {i}: {names} != {expected} or new variables")
    assert _table_sizes() == sizes_after_10
    assert len(ts.get_default_store()) == 2


def test_reentering_scopes_does_not_grow_memory():
    import gc
    import tracemalloc

    for _ in range(100):
        _training_step()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(200):
            _training_step()
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(20_000):
            _training_step()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 16 * 1024, f"grew by {after - before} bytes over 20,000 steps"


# -- the re-entry cache ----------------------------------------------------------------------------
# Re-entering a scope by name with no overrides hands out the parent's cached VariableScope. The
# cache must never make a later entry differ from a freshly built scope.


def _current_id():
    """The current scope's id: a test that kept the object would make the next entry
    build a new one (an object someone holds is never handed out again)."""
    return id(ts.get_variable_scope())


def test_reentered_scope_is_reused_and_equal_to_a_fresh_one():
    with ts.variable_scope("model", reuse=ts.AUTO_REUSE):
        with ts.variable_scope("layer"):
            first = _current_id()
        with ts.variable_scope("layer"):
            assert _current_id() == first  # the cache hit: nothing held the object
        with ts.variable_scope("layer") as kept:
            pass
        with ts.variable_scope("layer") as second:
            assert ts.get_name_scope() == "model/layer"
    assert second is not kept  # kept is held: a new object, as TensorFlow makes
    assert (second.name, second.reuse, second.original_name_scope) == (
        "model/layer",
        ts.AUTO_REUSE,
        "model/layer/",
    )


def test_reentered_scope_follows_the_reuse_flag_of_each_entry():
    with ts.variable_scope("a"), ts.variable_scope("b") as b:
        assert b.reuse is False
    with ts.variable_scope("a", reuse=True), ts.variable_scope("b") as b:
        assert b.reuse is True
    with ts.variable_scope("a"):
        with ts.variable_scope("b", reuse=ts.AUTO_REUSE) as b:
            assert b.reuse is ts.AUTO_REUSE
        with ts.variable_scope("b") as b:
            assert b.reuse is False


def test_reentered_scope_follows_the_enclosing_name_scope():
    with ts.variable_scope("net") as net:
        with ts.variable_scope("head") as head:
            assert head.original_name_scope == "net/head/"
        with ts.name_scope("tower"), ts.variable_scope("head") as head:
            assert head.original_name_scope == "net/tower/head/"
            assert ts.get_name_scope() == "net/tower/head"
            assert head.name == "net/head"
        with ts.variable_scope("head") as head:
            assert head.original_name_scope == "net/head/"
            assert ts.get_name_scope() == "net/head"
    assert net.name == "net"


def test_reuse_variables_stays_with_its_entry():
    # TensorFlow: reuse_variables() changes that scope object; re-entering the name later
    # builds a fresh scope that inherits reuse from its parent again.
    with ts.variable_scope("a"), ts.variable_scope("b") as b:
        ts.get_variable("v", [1])
        b.reuse_variables()
        assert ts.get_variable("v", [1]) is ts.get_default_store()["a/b/v"]
    with ts.variable_scope("a"), ts.variable_scope("b") as again:
        assert again is not b
        assert again.reuse is False
        with pytest.raises(ValueError, match="already exists"):
            ts.get_variable("v", [1])
    assert b.reuse is True


def test_current_scope_changed_by_get_variable_scope_is_not_cached():
    with ts.variable_scope("a"):
        ts.get_variable("v", [1])
        ts.get_variable_scope().reuse_variables()
        ts.get_variable("v", [1])
    with ts.variable_scope("a"), pytest.raises(ValueError, match="already exists"):
        ts.get_variable("v", [1])


@pytest.mark.parametrize(
    ("setter", "value", "attribute", "expected"),
    [
        ("set_initializer", "init", "initializer", "init"),
        ("set_regularizer", "reg", "regularizer", "reg"),
        ("set_dtype", torch.float64, "dtype", torch.float64),
        ("set_device", "cpu", "device", torch.device("cpu")),
        ("set_constraint", "con", "constraint", "con"),
    ],
)
def test_a_changed_parent_is_seen_by_children_entered_later(setter, value, attribute, expected):
    functions = {"init": ts.constant_initializer(3.0), "reg": torch.sum, "con": torch.abs}
    value = functions.get(value, value) if isinstance(value, str) else value
    expected = functions.get(expected, expected) if isinstance(expected, str) else expected
    with ts.variable_scope("parent") as parent:
        with ts.variable_scope("child") as child:
            before = getattr(child, attribute)
        getattr(parent, setter)(value)
        with ts.variable_scope("child") as child:
            assert getattr(child, attribute) == expected
            assert getattr(child, attribute) != before
        del child
        with ts.variable_scope("child"):
            first = _current_id()
        with ts.variable_scope("child"):
            assert _current_id() == first  # cached again


def test_a_changed_child_does_not_change_its_cached_siblings_or_later_entries():
    getter_calls = []

    def getter(getter, name, *args, **kwargs):
        getter_calls.append(name)
        return getter(name, *args, **kwargs)

    with ts.variable_scope("p"):
        with ts.variable_scope("c") as c:
            c.set_custom_getter(getter)
            ts.get_variable("v", [1])
        with ts.variable_scope("d"):
            ts.get_variable("v", [1])
        with ts.variable_scope("c", reuse=True):
            ts.get_variable("v", [1])
    assert getter_calls == ["p/c/v"]


def test_failed_setter_leaves_the_cache_and_scope_as_they_were():
    with ts.variable_scope("p") as p:
        with ts.variable_scope("c"):
            first = _current_id()
        with pytest.raises(TypeError):
            p.set_initializer("42")
        with ts.variable_scope("c"):
            assert _current_id() == first
    assert p.initializer is None


def test_cache_is_bounded_for_names_made_in_a_loop():
    with ts.variable_scope("loop") as scope:
        for i in range(5_000):
            with ts.variable_scope(f"step{i}") as inner:
                assert inner.name == f"loop/step{i}"
        assert len(scope._children) <= 256
        with ts.variable_scope("step4999") as inner:
            assert inner.name == "loop/step4999"


def test_threads_reentering_the_same_scopes_get_their_own_names():
    import threading

    errors = []

    def work(tag):
        try:
            store = ts.get_default_store()
            with store.as_default():
                for _ in range(2_000):
                    with (
                        ts.variable_scope("shared", reuse=ts.AUTO_REUSE),
                        ts.name_scope(tag),
                        ts.variable_scope("inner") as inner,
                    ):
                        if ts.get_name_scope() != f"shared/{tag}/inner":
                            errors.append(ts.get_name_scope())
                        if inner.name != "shared/inner":
                            errors.append(inner.name)
                        ts.get_variable("w", [2])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(ts.get_default_store().keys()) == ["shared/inner/w"]


def test_captured_scope_reentry_is_cached_per_reuse_flag_and_follows_changes():
    with ts.variable_scope("tower") as tower:
        ts.get_variable("w", [1])
    with ts.variable_scope(tower, reuse=True):
        assert ts.get_variable("w", [1]) is ts.get_default_store()["tower/w"]
        first = _current_id()
    with ts.variable_scope(tower, reuse=True):
        assert _current_id() == first
    with ts.variable_scope(tower) as plain:
        assert plain.reuse is False
    # A change of the captured scope reaches the copies opened after it.
    tower.set_initializer(ts.constant_initializer(2.0))
    with ts.variable_scope(tower) as changed:
        assert changed is not plain
        assert torch.equal(ts.get_variable("u", [2]), torch.full((2,), 2.0))
    # A change of an opened copy stays with it.
    with ts.variable_scope(tower) as copy:
        copy.reuse_variables()
    with ts.variable_scope(tower) as fresh:
        assert fresh.reuse is False
    assert tower.reuse is False


# -- a value as a scope's initializer (TensorFlow: variable_scope(initializer=tf.constant(..))) --


@pytest.mark.parametrize(
    ("value", "shape", "dtype"),
    [
        (torch.tensor(0.1), (), torch.float32),
        (torch.tensor([1.0, 2.0]), (2,), torch.float32),
        (0.1, (), torch.float32),
        ([[1.0, 2.0], [3.0, 4.0]], (2, 2), torch.float32),
        (np.ones((2, 3), np.float32), (2, 3), torch.float32),
    ],
)
def test_a_scope_initializer_may_be_a_value(ts_store, value, shape, dtype):
    # TensorFlow 2.21: get_variable("v") takes the value's shape (checked by hand:
    # tensor (), tensor (2,), 0.1 (), [[1, 2], [3, 4]] (2, 2), np.ones((2, 3)) (2, 3))
    with ts.variable_scope("foo", initializer=value), ts.variable_scope("bar"):  # inherited
        v = ts.get_variable("v")
    assert v.shape == shape and v.dtype == dtype
    torch.testing.assert_close(v.detach(), torch.as_tensor(np.asarray(value), dtype=dtype))


def test_set_initializer_takes_a_value(ts_store):
    with ts.variable_scope("foo") as scope:
        scope.set_initializer(torch.tensor([1.0, 2.0]))
        assert torch.equal(ts.get_variable("v").detach(), torch.tensor([1.0, 2.0]))
        # an explicit initializer still wins over the scope's value
        w = ts.get_variable("w", [3], initializer=ts.zeros_initializer())
    assert torch.equal(w.detach(), torch.zeros(3))


def test_a_scope_value_with_a_shape_must_match(ts_store):
    with ts.variable_scope("foo", initializer=torch.tensor([1.0, 2.0])):
        assert ts.get_variable("v", [2]).shape == (2,)
        with pytest.raises(ValueError, match=r"'foo/w' is a value of shape \[2\].*\[3\]"):
            ts.get_variable("w", [3])
    with (
        ts.variable_scope("bar", initializer=0.1),  # a scalar is not broadcast
        pytest.raises(ValueError, match=r"'bar/v' is a value of shape \[\].*\[2, 3\]"),
    ):
        ts.get_variable("v", [2, 3])
    assert list(ts_store) == ["foo/v"]


def test_a_scope_value_is_checked_against_an_explicit_dtype(ts_store):
    with ts.variable_scope("foo", initializer=torch.tensor([1.0, 2.0], dtype=torch.float64)):
        with pytest.raises(ValueError, match="foo/v"):
            ts.get_variable("v", dtype=torch.float32)
        assert ts.get_variable("w", dtype=torch.float64).dtype == torch.float64
    with ts.variable_scope("ints", initializer=3):
        assert ts.get_variable("v", dtype=torch.int32).dtype == torch.int32


def test_a_scope_initializer_that_is_no_value_is_refused():
    with pytest.raises(TypeError, match=r"callable .* or a value .* got str 'x'"):
        ts.variable_scope("foo", initializer="x")
    with pytest.raises(TypeError, match=r"initializer list \[\[None\]\] is not a value"):
        ts.variable_scope("foo", initializer=[[None]])
    with pytest.raises(TypeError, match=r"callable .* or a value"):
        ts.variable_scope("foo", initializer=object())
    with ts.variable_scope("foo") as scope, pytest.raises(TypeError, match="not a value"):
        scope.set_initializer([["a"]])
    assert scope.initializer is None
