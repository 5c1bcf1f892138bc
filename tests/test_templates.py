"""make_template with TensorFlow's rules."""

import pytest
import torch

import torchscope as ts


def dense(x, units=3, with_bias=False):
    w = ts.get_variable("w", [x.shape[-1], units])
    y = x @ w
    if with_bias:
        y = y + ts.get_variable("b", [units], initializer=ts.zeros_initializer())
    return y


@pytest.fixture(autouse=True)
def fresh(ts_store):
    return ts_store


def names(variables):
    return [ts.name_of(v) for v in variables]


def test_first_call_creates_later_calls_share():
    layer = ts.make_template("dense", dense)
    assert layer.variable_scope is None and layer.variables == []
    a = layer(torch.ones(2, 4))
    b = layer(torch.ones(2, 4))
    torch.testing.assert_close(a, b)
    assert names(layer.variables) == ["dense/w"]
    assert names(ts.global_variables()) == ["dense/w"]
    assert layer.variable_scope.name == "dense"
    assert layer.variable_scope_name == "dense/"
    assert layer.name == "dense"


def test_two_templates_with_one_name_get_unique_scopes():
    first = ts.make_template("dense", dense)
    second = ts.make_template("dense", dense)
    first(torch.ones(1, 4))
    second(torch.ones(1, 4))
    assert names(first.variables) == ["dense/w"]
    assert names(second.variables) == ["dense_1/w"]


def test_kwargs_are_bound():
    layer = ts.make_template("dense", dense, units=5, with_bias=True)
    assert layer(torch.ones(2, 4)).shape == (2, 5)
    assert names(layer.trainable_variables) == ["dense/w", "dense/b"]


def test_create_scope_now_and_unique_name():
    now = ts.make_template("enc", dense, create_scope_now_=True)
    assert now.variable_scope.name == "enc"
    with ts.variable_scope("outer"):
        now(torch.ones(1, 4))  # jumps to its own scope
    assert names(now.variables) == ["enc/w"]
    fixed = ts.make_template("ignored", dense, unique_name_="exact/name")
    fixed(torch.ones(1, 4))
    assert names(fixed.variables) == ["exact/name/w"]


def test_later_call_that_would_create_raises():
    layer = ts.make_template("dense", dense)
    layer(torch.ones(1, 4))
    with pytest.raises(ValueError, match="dense/b does not exist"):
        layer(torch.ones(1, 4), with_bias=True)


def test_auto_reuse_inside_cannot_create_trainables_after_the_first_call():
    def fn(x, extra=False):
        with ts.variable_scope("inner", reuse=ts.AUTO_REUSE):
            y = x * ts.get_variable("a", [1])
            if extra:
                y = y * ts.get_variable("b", [1])
        return y

    layer = ts.make_template("t", fn)
    layer(torch.ones(1))
    with pytest.raises(ValueError, match=r"created trainable variable\(s\) \['t/inner/b'\]"):
        layer(torch.ones(1), extra=True)


def test_custom_getter():
    calls = []

    def getter(getter, name, *args, **kwargs):
        calls.append(name)
        return getter(name, *args, **kwargs) * 2

    layer = ts.make_template("dense", dense, custom_getter_=getter)
    layer(torch.ones(1, 4))
    layer(torch.ones(1, 4))
    assert calls == ["dense/w", "dense/w"]


def test_every_call_names_operations_the_same_way():
    seen = []

    def fn(x):
        with ts.name_scope("attn"):
            seen.append(ts.get_name_scope())
        return x * ts.get_variable("g", [1])

    layer = ts.make_template("enc", fn)
    for _ in range(4):
        layer(torch.ones(1))
    assert seen == ["enc/attn"] * 4


def test_template_shared_by_two_inputs_and_trained():
    encoder = ts.make_template("encoder", dense, units=2)
    x1, x2 = torch.randn(8, 4), torch.randn(8, 4)
    encoder(x1)
    opt = torch.optim.SGD(encoder.trainable_variables, lr=0.1)
    for _ in range(50):
        loss = (encoder(x1) - encoder(x2)).pow(2).mean() + (encoder(x1).sum() - 1) ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert len(ts.global_variables()) == 1


def test_non_trainable_variables():
    def fn(x):
        ts.get_variable("count", [], dtype=torch.int64)
        return x * ts.get_variable("w", [1])

    layer = ts.make_template("t", fn)
    layer(torch.ones(1))
    assert names(layer.non_trainable_variables) == ["t/count"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="name_ cannot be None"):
        ts.make_template(None, dense)
    with pytest.raises(TypeError, match="func_ must be callable"):
        ts.make_template("x", 3)
    with pytest.raises(ValueError, match=r"make_template name 'a.b' is not valid"):
        ts.make_template("a.b", dense)


def test_a_failed_first_module_call_takes_the_templates_variables_back_too():
    dense = ts.make_template("dense", lambda x: x @ ts.get_variable("w", [2, 2]))
    fail = [True]

    def fn(x):
        y = dense(x)
        if fail[0]:
            raise RuntimeError("boom")
        return dense(y)

    module = ts.ScopedModule(fn, name="m")
    with pytest.raises(RuntimeError, match="boom"):
        module(torch.ones(1, 2))
    assert len(module.store) == 0
    fail[0] = False
    out = module(torch.ones(1, 2))  # the retry makes the template's variables again
    assert list(module.store) == ["m/dense/w"] and out.shape == (1, 2)
    assert [ts.name_of(v) for v in module.store.variables()] == ["m/dense/w"]


def test_a_template_that_made_variables_still_pickles():
    import pickle

    scale = ts.make_template("scale", _scale)
    scale(torch.ones(1))
    copied = pickle.loads(pickle.dumps(scale))
    assert copied.variable_scope_name == "scale/"


def _scale(x):
    return x * ts.get_variable("s", [1])
