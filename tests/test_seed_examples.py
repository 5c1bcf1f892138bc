"""Every example of the design document ("Sharing Variables"), with ``tf.`` -> ``ts.``.

Each test asserts what the document asserts, its ``assert v.name == "foo/v:0"`` lines
as written; operation names (``x.op.name``) with ``ts.get_name_scope()`` (the scope an
operation made there would be named under).
"""

import pytest
import torch
import torch.nn.functional as F

import torchscope as ts


def name(v):
    return v.name


# -- The Problem / Variable Scope Example: the image filter ------------------------------------


def conv2d_nhwc(images, kernel):
    """``tf.nn.conv2d(images, kernel, strides=[1, 1, 1, 1], padding='SAME')`` on NHWC
    images and an HWIO kernel."""
    x = images.permute(0, 3, 1, 2)
    w = kernel.permute(3, 2, 0, 1)
    return F.conv2d(x, w, padding="same").permute(0, 2, 3, 1)


def conv_relu(input, kernel_shape, bias_shape):
    # Create variable named "weights".
    weights = ts.get_variable("weights", kernel_shape, initializer=ts.random_normal_initializer())
    # Create variable named "biases".
    biases = ts.get_variable("biases", bias_shape, initializer=ts.constant_initializer(0.0))
    conv = conv2d_nhwc(input, weights)
    return torch.relu(conv + biases)


def my_image_filter(input_images):
    with ts.variable_scope("conv1"):
        # Variables created here will be named "conv1/weights", "conv1/biases".
        relu1 = conv_relu(input_images, [5, 5, 32, 32], [32])
    with ts.variable_scope("conv2"):
        # Variables created here will be named "conv2/weights", "conv2/biases".
        return conv_relu(relu1, [5, 5, 32, 32], [32])


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.randn(1, 8, 8, 32), torch.randn(1, 8, 8, 32)


def test_my_image_filter_creates_four_named_variables(images):
    image1, _ = images
    result1 = my_image_filter(image1)
    assert result1.shape == (1, 8, 8, 32)
    assert (result1 >= 0).all()
    assert [name(v) for v in ts.global_variables()] == [
        "conv1/weights:0",
        "conv1/biases:0",
        "conv2/weights:0",
        "conv2/biases:0",
    ]
    assert ts.get_variable_scope().name == ""


def test_my_image_filter_twice_without_reuse_raises(images):
    image1, image2 = images
    # First call creates one set of 4 variables.
    my_image_filter(image1)
    # The second call would create the same names: get_variable refuses.
    with pytest.raises(ValueError, match=r"conv1/weights already exists"):
        my_image_filter(image2)
    assert len(ts.global_variables()) == 4
    # The failed call closed its scopes on the way out.
    assert ts.get_variable_scope().name == ""
    assert ts.get_name_scope() == ""


def test_my_image_filter_shared_with_reuse_variables(images):
    image1, image2 = images
    with ts.variable_scope("image_filters") as scope:
        result1 = my_image_filter(image1)
        first = ts.global_variables()
        scope.reuse_variables()
        result2 = my_image_filter(image2)
    variables = ts.global_variables()
    assert len(variables) == 4
    assert all(a is b for a, b in zip(first, variables, strict=True))
    assert [name(v) for v in variables] == [
        "image_filters/conv1/weights:0",
        "image_filters/conv1/biases:0",
        "image_filters/conv2/weights:0",
        "image_filters/conv2/biases:0",
    ]
    # The same filter on each image: applying it again to image1 gives result1.
    with ts.variable_scope("image_filters", reuse=True):
        again = my_image_filter(image1)
    torch.testing.assert_close(again, result1)
    assert not torch.equal(result1, result2)


def test_shared_image_filter_gradients_reach_the_four_variables(images):
    image1, image2 = images
    with ts.variable_scope("image_filters") as scope:
        result1 = my_image_filter(image1)
        scope.reuse_variables()
        result2 = my_image_filter(image2)
    (result1.sum() + result2.sum()).backward()
    assert all(v.grad is not None for v in ts.trainable_variables())


# -- Understanding get_variable ----------------------------------------------------------------


def test_case1_create():
    with ts.variable_scope("foo"):
        # The scope is set for creating new variables.
        assert ts.get_variable_scope().reuse is False
        v = ts.get_variable("v", [1])
    assert v.name == "foo/v:0"
    assert isinstance(v, torch.nn.Parameter)
    assert v.shape == (1,)


def test_case1_create_existing_name_raises():
    with ts.variable_scope("foo"):
        ts.get_variable("v", [1])
    with ts.variable_scope("foo"), pytest.raises(ValueError, match=r"foo/v already exists"):
        ts.get_variable("v", [1])


def test_case2_reuse():
    with ts.variable_scope("foo"):
        v = ts.get_variable("v", [1])
    with ts.variable_scope("foo", reuse=True):
        # The scope is set for reusing variables.
        assert ts.get_variable_scope().reuse is True
        v1 = ts.get_variable("v", [1])
    assert v1 is v


def test_case2_reuse_missing_raises():
    with (
        ts.variable_scope("foo", reuse=True),
        pytest.raises(ValueError, match=r"foo/v does not exist"),
    ):
        ts.get_variable("v", [1])


# -- Basics of variable_scope ----------------------------------------------------------------


def test_nested_scopes_append_names():
    with ts.variable_scope("foo"), ts.variable_scope("bar"):
        v = ts.get_variable("v", [1])
    assert v.name == "foo/bar/v:0"


def test_reuse_variables_in_current_scope():
    with ts.variable_scope("foo"):
        v = ts.get_variable("v", [1])
        ts.get_variable_scope().reuse_variables()
        v1 = ts.get_variable("v", [1])
    assert v1 is v


def test_reuse_cannot_be_set_false_but_is_left_on_exit():
    with ts.variable_scope("root"):
        # At start, the scope is not reusing.
        assert ts.get_variable_scope().reuse is False
        with ts.variable_scope("foo"):
            # Opened a sub-scope, still not reusing.
            assert ts.get_variable_scope().reuse is False
        with ts.variable_scope("foo", reuse=True):
            # Explicitly opened a reusing scope.
            assert ts.get_variable_scope().reuse is True
            with ts.variable_scope("bar"):
                # Now sub-scope inherits the reuse flag.
                assert ts.get_variable_scope().reuse is True
            with ts.variable_scope("bar", reuse=False):
                # reuse=False cannot switch it off.
                assert ts.get_variable_scope().reuse is True
        # Exited the reusing scope, back to a non-reusing one.
        assert ts.get_variable_scope().reuse is False


# -- Capturing variable scope ------------------------------------------------------------------


def test_captured_scope_shares_by_object():
    with ts.variable_scope("foo") as foo_scope:
        v = ts.get_variable("v", [1])
    with ts.variable_scope(foo_scope):
        w = ts.get_variable("w", [1])
    with ts.variable_scope(foo_scope, reuse=True):
        v1 = ts.get_variable("v", [1])
        w1 = ts.get_variable("w", [1])
    assert v1 is v
    assert w1 is w
    assert w.name == "foo/w:0"


def test_captured_scope_jumps_to_its_absolute_prefix():
    with ts.variable_scope("foo") as foo_scope:
        assert foo_scope.name == "foo"
    with ts.variable_scope("bar"), ts.variable_scope("baz") as other_scope:
        assert other_scope.name == "bar/baz"
        with ts.variable_scope(foo_scope) as foo_scope2:
            assert foo_scope2.name == "foo"  # Not changed.
            v = ts.get_variable("v", [1])
        assert ts.get_variable_scope().name == "bar/baz"
    assert v.name == "foo/v:0"


# -- Initializers in variable scope ------------------------------------------------------------


def test_scope_initializer_inherited_and_overridden():
    with ts.variable_scope("foo", initializer=ts.constant_initializer(0.4)):
        v = ts.get_variable("v", [1])
        assert v.item() == pytest.approx(0.4)  # Default initializer as set above.
        w = ts.get_variable("w", [1], initializer=ts.constant_initializer(0.3))
        assert w.item() == pytest.approx(0.3)  # Specific initializer overrides the default.
        with ts.variable_scope("bar"):
            v = ts.get_variable("v", [1])
            assert v.item() == pytest.approx(0.4)  # Inherited default initializer.
        with ts.variable_scope("baz", initializer=ts.constant_initializer(0.2)):
            v = ts.get_variable("v", [1])
            assert v.item() == pytest.approx(0.2)  # Changed default initializer.
    assert [name(v) for v in ts.global_variables()] == [
        "foo/v:0",
        "foo/w:0",
        "foo/bar/v:0",
        "foo/baz/v:0",
    ]


def test_initializers_named_in_the_document():
    with ts.variable_scope("inits"):
        c = ts.get_variable("c", [100], initializer=ts.constant_initializer(0.5))
        u = ts.get_variable("u", [1000], initializer=ts.random_uniform_initializer(-1.0, 2.0))
        n = ts.get_variable("n", [10000], initializer=ts.random_normal_initializer(3.0, 0.5))
    assert torch.all(c == 0.5)
    assert u.min() >= -1.0 and u.max() <= 2.0
    assert n.mean().item() == pytest.approx(3.0, abs=0.05)
    assert n.std().item() == pytest.approx(0.5, abs=0.05)


# -- Names of ops in variable_scope -------------------------------------------------------------


def test_variable_scope_opens_a_name_scope():
    with ts.variable_scope("foo"):
        x = 1.0 + ts.get_variable("v", [1])
        # An op made here ("add") is named foo/add.
        assert ts.get_name_scope() == "foo"
    assert x.shape == (1,)
    assert ts.get_name_scope() == ""


def test_name_scope_names_ops_not_variables():
    with ts.variable_scope("foo"), ts.name_scope("bar"):
        v = ts.get_variable("v", [1])
        x = 1.0 + v
        assert ts.get_name_scope() == "foo/bar"  # so the op is foo/bar/add
    assert v.name == "foo/v:0"
    assert x.shape == (1,)


def test_captured_scope_leaves_the_name_scope_alone():
    with ts.variable_scope("foo") as foo_scope:
        pass
    with ts.variable_scope("bar"), ts.variable_scope(foo_scope):
        assert ts.get_variable_scope().name == "foo"
        assert ts.get_name_scope() == "bar"
        v = ts.get_variable("v", [1])
    assert v.name == "foo/v:0"
