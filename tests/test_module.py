"""ScopedModule: creation on the first call, reuse after, and PyTorch around it
(optimizers, checkpoints, devices and dtypes, copies)."""

import copy
import functools
import io
import warnings

import pytest
import torch
from torch import nn

import torchscope as ts
from torchscope._lookup import get_or_create


def mlp(x, layers=3, width=16):
    for i in range(layers):
        with ts.variable_scope(f"layer{i}"):
            w = ts.get_variable("w", [x.shape[-1], width])
            b = ts.get_variable("b", [width], initializer=ts.zeros_initializer())
            x = torch.tanh(x @ w + b)
    with ts.variable_scope("out"):
        w = ts.get_variable("w", [width, 1])
    return x @ w


class Net(ts.ScopedModule):
    def __init__(self):
        super().__init__(name="net")

    def forward(self, x):
        with ts.variable_scope("dense"):
            w = ts.get_variable("w", [x.shape[-1], 3])
        return x @ w


NAMES = [
    "mlp/layer0/w",
    "mlp/layer0/b",
    "mlp/layer1/w",
    "mlp/layer1/b",
    "mlp/layer2/w",
    "mlp/layer2/b",
    "mlp/out/w",
]


def built(fn=mlp, name="mlp", x=None):
    module = ts.ScopedModule(fn, name=name)
    module(torch.randn(4, 8) if x is None else x)
    return module


def test_first_call_creates_later_calls_reuse():
    module = ts.ScopedModule(mlp, name="mlp")
    assert not module.built and list(module.parameters()) == []
    x = torch.randn(4, 8)
    y1 = module(x)
    params = list(module.parameters())
    y2 = module(x)
    assert module.built
    assert [n for n, _ in module.named_parameters()] == NAMES
    assert all(a is b for a, b in zip(params, module.parameters(), strict=True))
    torch.testing.assert_close(y1, y2)


def test_subclass_form_and_store():
    net = Net()
    net(torch.ones(2, 5))
    assert list(net.state_dict()) == ["net/dense/w"]
    assert list(net.store) == ["net/dense/w"]
    assert net.store["net/dense/w"] is dict(net.named_parameters())["net/dense/w"]


def test_later_call_that_would_create_raises_naming_the_variable():
    def branchy(x, extra=False):
        y = x * ts.get_variable("a", [1])
        if extra:
            with ts.variable_scope("head"):
                y = y * ts.get_variable("b", [1])
        return y

    module = ts.ScopedModule(branchy, name="m")
    module(torch.ones(1))
    with pytest.raises(ValueError, match=r"m/head/b.*first call"):
        module(torch.ones(1), extra=True)
    assert list(module.store) == ["m/a"]


def test_auto_reuse_scope_inside_cannot_create_after_first_call():
    def fn(x, name):
        with ts.variable_scope("s", reuse=ts.AUTO_REUSE):
            return x * ts.get_variable(name, [1])

    module = ts.ScopedModule(fn)
    module(torch.ones(1), "a")
    with pytest.raises(ValueError, match=r"would create a new variable s/b"):
        module(torch.ones(1), "b")


def test_failed_first_call_leaves_no_variables():
    def broken(x):
        ts.get_variable("a", [2])
        raise RuntimeError("boom")

    module = ts.ScopedModule(broken)
    with pytest.raises(RuntimeError, match="boom"):
        module(torch.ones(1))
    assert len(module.store) == 0 and not module.built


def test_failed_first_call_takes_back_what_it_added_to_collections():
    def broken(x):
        ts.add_to_collection("activations", x)
        ts.add_to_collection("losses", x.sum())
        raise RuntimeError("boom")

    module = ts.ScopedModule(broken)
    with module.store.as_default():
        ts.add_to_collection("activations", "kept")
    with pytest.raises(RuntimeError, match="boom"):
        module(torch.ones(1))
    assert module.store._collections == {"activations": ["kept"]}


def test_calls_ignore_the_callers_scopes_and_names_are_stable(ts_store):
    module = ts.ScopedModule(mlp, name="mlp")
    with ts.variable_scope("outer"):
        module(torch.randn(2, 8))
        with ts.name_scope("ops"):
            module(torch.randn(2, 8))
    assert [n for n, _ in module.named_parameters()] == NAMES
    assert len(ts_store) == 0  # nothing was made in the default store: the module holds them
    # ... which lists the module it was built in, as TensorFlow's graph listed everything
    assert ts.global_variables() == list(module.parameters())


def test_each_call_starts_from_the_same_name_scope_state():
    seen = []

    def fn(x):
        with ts.variable_scope(None, default_name="block"):
            with ts.name_scope("act"):
                seen.append(ts.get_name_scope())
            return x * ts.get_variable("g", [1])

    module = ts.ScopedModule(fn, name="m")
    for _ in range(5):
        module(torch.ones(1))
    assert seen == ["m/block/act"] * 5
    assert list(module.store) == ["m/block/g"]


def test_nested_inside_another_module_uses_child_prefix():
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = ts.ScopedModule(mlp, name="mlp")
            self.head = nn.Linear(1, 1)

        def forward(self, x):
            return self.head(self.body(x))

    outer = Outer()
    outer(torch.randn(2, 8))
    keys = list(outer.state_dict())
    assert keys == [f"body.{n}" for n in NAMES] + ["head.weight", "head.bias"]


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: torch.optim.Adam(p, lr=0.02),
        lambda p: torch.optim.AdamW(p, lr=0.02, weight_decay=0.01),
        lambda p: torch.optim.RMSprop(p, lr=0.005),
    ],
    ids=["sgd", "adam", "adamw", "rmsprop"],
)
def test_optimizers_train_a_scoped_module(make_opt):
    torch.manual_seed(0)
    x = torch.randn(128, 8)
    target = torch.sin(x.sum(-1, keepdim=True))
    module = built(x=x)
    opt = make_opt(module.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=100, gamma=0.5)
    ts.check_optimizer(opt, module)
    first = None
    for _ in range(200):
        loss = ((module(x) - target) ** 2).mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    assert loss.item() < 0.2 * first


def test_check_optimizer_names_variables_created_after_the_optimizer(ts_store):
    with ts.variable_scope("a"):
        ts.get_variable("w", [2])
    store = ts.get_default_store()
    opt = torch.optim.SGD(store.parameters(), lr=0.1)
    ts.check_optimizer(opt, store)
    with ts.variable_scope("b"):
        ts.get_variable("late", [2])
        ts.get_variable("frozen", [2], trainable=False)
    with pytest.raises(
        ValueError, match=r"does not update 1 trainable.*'b/late'.*call the module once"
    ):
        ts.check_optimizer(opt, store)


def test_state_dict_round_trip_into_a_fresh_module(tmp_path):
    x = torch.randn(4, 8)
    module = built(x=x)
    path = tmp_path / "ckpt.pt"
    torch.save(module.state_dict(), path)
    fresh = built(x=x)
    assert not torch.equal(fresh(x), module(x))
    fresh.load_state_dict(torch.load(path))
    torch.testing.assert_close(fresh(x), module(x), rtol=0, atol=0)


def test_strict_load_reports_missing_and_unexpected_full_names():
    module = built()
    state = module.state_dict()
    state.pop("mlp/out/w")
    state["mlp/extra/w"] = torch.zeros(1)
    with pytest.raises(
        RuntimeError, match=r"Missing key\(s\).*mlp/out/w.*\n.*Unexpected key\(s\).*mlp/extra/w"
    ):
        built().load_state_dict(state)
    result = built().load_state_dict(state, strict=False)
    assert result.missing_keys == ["mlp/out/w"] and result.unexpected_keys == ["mlp/extra/w"]


def test_load_before_the_first_call_creates_from_the_checkpoint():
    x = torch.randn(4, 8)
    module = built(x=x)
    fresh = ts.ScopedModule(mlp, name="mlp")
    fresh.load_state_dict(module.state_dict())
    assert [n for n, _ in fresh.named_parameters()] == NAMES
    torch.testing.assert_close(fresh(x), module(x), rtol=0, atol=0)
    assert fresh.built
    with pytest.raises(ValueError, match="first call"):
        fresh(x, layers=4)


def test_load_before_the_first_call_warns_about_variables_it_lacked():
    module = built()
    state = module.state_dict()
    state.pop("mlp/out/w")
    fresh = ts.ScopedModule(mlp, name="mlp")
    fresh.load_state_dict(state, strict=False)
    with pytest.warns(UserWarning, match=r"lacked \['mlp/out/w'\]"):
        fresh(torch.randn(2, 8))


def test_torch_save_module_and_deepcopy_give_independent_copies():
    x = torch.randn(4, 8)
    module = built(x=x)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    copied = copy.deepcopy(module)
    for other in (loaded, copied):
        torch.testing.assert_close(other(x), module(x))
        assert other.store is not module.store
        assert ts.name_of(next(other.parameters())) == "mlp/layer0/w"
        with torch.no_grad():
            for p in other.parameters():
                p.zero_()
        assert other(x).abs().sum() == 0
        assert module(x).abs().sum() > 0
    with pytest.raises(ValueError, match="first call"):
        copied(x, layers=5)


# -- variables named like module attributes ---------------------------------------------------


@pytest.mark.parametrize(
    "key", ["training", "forward", "store", "built", "eval", "state_dict", "parameters", "to"]
)
def test_variables_named_like_module_attributes(key):
    def fn(x):
        return x * ts.get_variable(key, initializer=[1.0, 2.0])

    module = ts.ScopedModule(fn)
    x = torch.ones(2)
    module(x)
    v = module.store[key]
    module.eval()
    assert module.training is False
    torch.testing.assert_close(module(x), torch.tensor([1.0, 2.0]))
    module.train()
    assert module.training is True
    assert isinstance(module.store, ts.VariableStore) and module.built is True
    assert callable(module.forward) and callable(module.state_dict) and callable(module.to)
    assert [n for n, _ in module.named_parameters()] == [key]
    assert list(module.state_dict()) == [key] and list(module.store) == [key]
    assert module.store[key] is v and next(module.parameters()) is v
    fresh = ts.ScopedModule(fn)
    fresh(x)
    fresh.load_state_dict(module.state_dict())
    torch.testing.assert_close(fresh(x), torch.tensor([1.0, 2.0]))
    copied = copy.deepcopy(module).eval()
    assert copied.training is False and list(copied.state_dict()) == [key]


def test_eval_propagates_to_a_child_with_a_training_variable():
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = ts.ScopedModule(lambda x: x * ts.get_variable("training", [1]))

        def forward(self, x):
            return self.body(x)

    outer = Outer()
    outer(torch.ones(1))
    outer.eval()
    assert outer.body.training is False
    assert list(outer.state_dict()) == ["body.training"]


def test_an_attribute_beside_a_variable_of_the_same_name():
    module = built(fn=lambda x: x * ts.get_variable("scale", [1]), name=None, x=torch.ones(1))
    v = module.store["scale"]
    module.scale = 3  # an attribute: the variable is untouched
    assert module.scale == 3 and module.store["scale"] is v
    assert module(torch.ones(1)) == v
    del module.scale  # removes the attribute, not the variable
    assert module.scale is v and list(module.store) == ["scale"]  # nn.Module's lookup again


def test_a_compiled_module_with_a_training_variable_switches_to_eval():
    module = built(fn=lambda x: x * ts.get_variable("training", [1]), name=None, x=torch.ones(1))
    compiled = torch.compile(module, backend="eager", fullgraph=True)
    compiled(torch.ones(1))
    module.eval()
    assert module.training is False
    assert compiled(torch.ones(1)) == module.store["training"]


@pytest.mark.parametrize(
    "convert, dtype",
    [
        (lambda m: m.double(), torch.float64),
        (lambda m: m.to(torch.bfloat16), torch.bfloat16),
        (lambda m: m.half(), torch.float16),
    ],
)
def test_dtype_conversion_moves_the_variables_used_by_later_calls(convert, dtype):
    module = built()
    params_before = list(module.parameters())
    convert(module)
    assert all(p.dtype == dtype for p in module.parameters())
    assert all(p.dtype == dtype for p in module.store.variables())
    assert all(a is b for a, b in zip(params_before, module.parameters(), strict=True))
    y = module(torch.randn(2, 8, dtype=dtype))
    assert y.dtype == dtype


def test_to_device_meta_and_back():
    module = built()
    module.to("meta")
    assert all(p.device.type == "meta" for p in module.store.variables())
    out = module(torch.empty(2, 8, device="meta"))
    assert out.device.type == "meta"


def test_bad_arguments():
    with pytest.raises(TypeError, match="fn must be callable"):
        ts.ScopedModule(3)
    with pytest.raises(ValueError, match=r"ScopedModule name 'a.b' is not valid"):
        ts.ScopedModule(mlp, name="a.b")
    with pytest.raises(ValueError, match=r"ScopedModule name '_x' is not valid at the root"):
        ts.ScopedModule(mlp, name="_x")
    with pytest.raises(NotImplementedError, match="needs a function"):
        ts.ScopedModule()(torch.ones(1))


def test_summary_of_a_module():
    module = built()
    text = ts.summary(module)
    lines = text.splitlines()
    assert lines[0].split() == ["name", "shape", "dtype", "device", "trainable", "params"]
    assert lines[1] == "mlp/"
    assert lines[2] == "  layer0/"
    assert lines[3].split() == ["w", "(8,", "16)", "float32", "cpu", "yes", "128"]
    total = sum(p.numel() for p in module.parameters())
    assert lines[-1] == (
        f"total: 7 variables, {total:,} parameters ({total:,} trainable, 0 non-trainable)"
    )


def test_summary_of_the_default_store_counts_non_trainable(ts_store):
    ts.get_variable("step", [], dtype=torch.int64)
    ts.get_variable("w", [3, 3])
    text = ts.summary()
    assert text.splitlines()[1].split() == ["step", "()", "int64", "cpu", "no", "1"]
    assert (
        text.splitlines()[-1] == "total: 2 variables, 10 parameters (9 trainable, 1 non-trainable)"
    )
    with pytest.raises(TypeError, match=r"summary takes a ts.VariableStore or an nn.Module"):
        ts.summary(42)


def _uses(text):
    """{leaf name: uses} from a summary table with a uses column."""
    rows = [line.split() for line in text.splitlines()[1:-1]]
    return {row[0]: int(row[-1]) for row in rows if len(row) > 1}


def test_summary_counts_the_uses_of_each_variable_in_one_call():
    def net(x, skip_head=False):
        with ts.variable_scope("tower", reuse=ts.AUTO_REUSE):
            w = ts.get_variable("w", [4, 4])
        for _ in range(3):  # the same variable, three times: the reuse path
            with ts.variable_scope("tower", reuse=True):
                x = x @ ts.get_variable("w", [4, 4])
        with ts.variable_scope("tower", reuse=True):
            x = x @ ts.get_variable("w", [4, None])  # a None dim: the full path, counted once
            x = x * ts.get_variable("s", [], dtype=torch.float32)  # a dtype: the full path
        with ts.variable_scope("head"):
            h = ts.get_variable("h", [4, 1])
        with ts.variable_scope("unused"):
            ts.get_variable("u", [1])
        return x + w.sum() if skip_head else x @ h

    def make_s(getter, name, *args, **kwargs):
        return getter(name, *args, **kwargs)

    def build(x, skip_head=False):
        with ts.variable_scope("tower", reuse=ts.AUTO_REUSE, custom_getter=make_s):
            ts.get_variable("s", [], initializer=ts.ones_initializer())
        return net(x, skip_head)

    module = ts.ScopedModule(build)
    x = torch.randn(2, 4)
    first = _uses(ts.summary(module, inputs=(x,)))  # the first call: creation counts too
    assert first == {"w": 5, "s": 2, "h": 1, "u": 1}
    params = module._parameters
    assert _uses(ts.summary(module, inputs=(x,))) == first
    assert _uses(ts.summary(module, inputs=(x,), kwargs={"skip_head": True}))["h"] == 1
    assert module._parameters is params  # the counting dict is gone after the call
    assert module(x).requires_grad


def test_summary_counts_scoped_modules_inside_a_plain_module():
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = ts.ScopedModule(lambda x: x @ ts.get_variable("w", [3, 3]), name="a")
            self.b = ts.ScopedModule(lambda x: x + ts.get_variable("v", [3]), name="b")

        def forward(self, x):
            return self.b(self.a(self.a(x)))

    outer = Outer()
    x = torch.randn(2, 3)
    outer(x)
    text = ts.summary(outer, inputs=(x,))
    assert text.splitlines()[0].split()[-1] == "uses"
    assert _uses(text) == {"w": 2, "v": 1}


def test_summary_inputs_errors():
    module = built()
    with pytest.raises(TypeError, match=r"inputs must be a tuple.*inputs=\(x,\)"):
        ts.summary(module, inputs=torch.randn(4, 8))
    with pytest.raises(TypeError, match=r"needs a module to call"):
        ts.summary(ts.VariableStore(), inputs=(1,))
    with pytest.raises(ValueError, match=r"Linear holds none"):
        ts.summary(nn.Linear(2, 2), inputs=(torch.ones(1, 2),))
    params = module._parameters
    with pytest.raises(ValueError, match=r"mlp/layer0/w.*specified shape \(5, 16\)"):
        ts.summary(module, inputs=(torch.randn(4, 5),))  # the call fails
    assert module._parameters is params


def test_warnings_are_not_emitted_on_normal_use():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = built()
        module(torch.randn(2, 8))


# -- nn.Module's hooks and tracing around a built module's call --------------------------------


def test_forward_hooks_run_on_every_call():
    module = built()
    x = torch.randn(4, 8)
    expected = module(x * 2) + 1
    pre = module.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    post = module.register_forward_hook(lambda m, args, out: out + 1)
    for _ in range(2):
        torch.testing.assert_close(module(x), expected)
    pre.remove()
    post.remove()
    torch.testing.assert_close(module(x * 2), expected - 1)


def test_forward_hooks_with_kwargs():
    def scaled(x, scale=1.0):
        return mlp(x) * scale

    module = built(scaled)
    x = torch.randn(4, 8)
    expected = module(x, scale=3.0)

    def pre(m, args, kwargs):
        return args, {"scale": kwargs["scale"] * 3}

    handle = module.register_forward_pre_hook(pre, with_kwargs=True)
    torch.testing.assert_close(module(x, scale=1.0), expected)
    handle.remove()


def test_global_module_hooks_see_the_call():
    module = built()
    x = torch.randn(4, 8)
    seen = []
    handle = nn.modules.module.register_module_forward_hook(
        lambda m, args, out: seen.append(type(m).__name__)
    )
    try:
        module(x)
    finally:
        handle.remove()
    assert seen == ["ScopedModule"]
    module(x)
    assert seen == ["ScopedModule"]


def test_full_backward_hook_gets_the_gradients():
    module = built()
    x = torch.randn(4, 8, requires_grad=True)
    grads = []
    handle = module.register_full_backward_hook(lambda m, gin, gout: grads.append(gout[0]))
    module(x).sum().backward()
    handle.remove()
    assert len(grads) == 1 and grads[0].shape == (4, 1)
    torch.testing.assert_close(grads[0], torch.ones(4, 1))


def test_jit_trace_of_a_built_module():
    module = built()
    x = torch.randn(4, 8)
    traced = torch.jit.trace(module, x)
    torch.testing.assert_close(traced(x), module(x))
    assert [n for n, _ in traced.named_parameters()] == NAMES


# -- first calls from several threads, and from inside the first call ---------------------------


def test_concurrent_first_calls_build_once_and_lose_nothing():
    import threading
    import time

    def fn(x):
        w = ts.get_variable("w", [2, 2])
        time.sleep(0.02)  # the other threads arrive while this call is building
        v = ts.get_variable("v", [2, 2])
        return x @ w @ v

    module = ts.ScopedModule(fn, name="m")
    barrier = threading.Barrier(4)
    results, errors = [], []

    def call():
        barrier.wait()
        try:
            results.append(module(torch.ones(1, 2)))
        except Exception as error:  # pragma: no cover - the failure this test guards against
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert module.built and list(module.store) == ["m/w", "m/v"]
    for out in results[1:]:
        torch.testing.assert_close(out, results[0])


def test_a_module_that_calls_itself_on_its_first_call():
    def tree(x, depth=2):
        w = ts.get_variable("w", [2, 2])
        if depth == 0:
            return x @ w
        return module(x @ w, depth=depth - 1) + x

    module = ts.ScopedModule(tree, name="R")
    out = module(torch.ones(1, 2))
    assert module.built and list(module.store) == ["R/w"]
    torch.testing.assert_close(module(torch.ones(1, 2)), out)


def test_data_parallel_of_a_module_not_yet_called_says_to_call_it_first():
    module = ts.ScopedModule(mlp, name="mlp")
    with pytest.raises(RuntimeError, match=r"call it once.*before wrapping it in nn\.DataParallel"):
        module._replicate_for_data_parallel()
    module(torch.randn(2, 8))
    assert list(module._replicate_for_data_parallel().store) == NAMES


# -- torch.func.functional_call before the first call ---------------------------------------------


def test_functional_call_before_the_first_call_is_refused_and_changes_nothing():
    from torch.func import functional_call

    module = ts.ScopedModule(mlp, name="mlp")
    x = torch.randn(2, 8)
    params = {name: torch.zeros(()) for name in NAMES}
    with pytest.raises(
        RuntimeError, match=r"given tensors for \['mlp/layer0/w'.*Call the module once"
    ):
        functional_call(module, params, (x,))
    assert not module.built and len(module.store) == 0
    assert not any("/" in key for key in module.__dict__)
    module(x)  # the module still builds normally
    reference = built(x=x)
    reference.load_state_dict(module.state_dict())
    zeros = {name: torch.zeros_like(p) for name, p in module.named_parameters()}
    assert functional_call(module, zeros, (x,)).abs().sum() == 0


def test_functional_call_before_the_first_call_of_an_unnamed_module():
    from torch.func import functional_call

    module = ts.ScopedModule(lambda x: x * ts.get_variable("scale", initializer=[2.0]))
    with pytest.raises(RuntimeError, match=r"given tensors for \['scale'\]"):
        functional_call(module, {"scale": torch.tensor([5.0])}, (torch.ones(1),))
    assert not module.built and len(module.store) == 0
    torch.testing.assert_close(module(torch.ones(1)), torch.tensor([2.0]))


# -- checkpoints loaded before the first call ------------------------------------------------------


def with_extras(x):
    w = ts.get_variable(
        "w",
        [2, 2],
        regularizer=lambda v: v.pow(2).sum(),
        constraint=lambda v: v.clamp(-0.1, 0.1),
    )
    mean = ts.get_variable("moving_mean", [2], trainable=False, initializer=ts.zeros_initializer())
    return x @ w + mean


def test_load_before_the_first_call_keeps_trainable_regularizer_and_constraint():
    source = built(with_extras, name="m", x=torch.ones(1, 2))
    fresh = ts.ScopedModule(with_extras, name="m")
    fresh.load_state_dict(source.state_dict())
    fresh(torch.ones(1, 2))
    for module in (source, fresh):
        store = module.store
        assert not store["m/moving_mean"].requires_grad and store["m/w"].requires_grad
        assert list(store._trainable) == ["m/w"]
        with store.as_default():
            assert [ts.name_of(v) for v in ts.trainable_variables()] == ["m/w"]
            assert len(ts.regularization_losses()) == 1
        assert list(store._constraints) == ["m/w"]
    assert "trainable" in ts.summary(fresh) and "moving_mean" in ts.summary(fresh)


def test_load_before_the_first_call_lets_the_optimizer_be_built_first():
    x = torch.randn(4, 8)
    source = built(x=x)
    opt = torch.optim.Adam(source.parameters(), lr=0.1)
    torch.nn.functional.mse_loss(source(x), torch.zeros(4, 1)).backward()
    opt.step()
    fresh = ts.ScopedModule(mlp, name="mlp")
    fresh.load_state_dict(source.state_dict())
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.1)  # before the first call
    fresh_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # as if from torch.load
    torch.testing.assert_close(fresh(x), source(x), rtol=0, atol=0)
    for o in (opt, fresh_opt):
        o.zero_grad()
    for module, o in ((source, opt), (fresh, fresh_opt)):
        torch.nn.functional.mse_loss(module(x), torch.zeros(4, 1)).backward()
        o.step()
    torch.testing.assert_close(fresh(x), source(x))


def test_load_before_the_first_call_drops_variables_the_call_does_not_ask_for():
    x = torch.randn(2, 8)
    state = built(x=x).state_dict()
    state["mlp/layer9/zzz"] = torch.zeros(3)
    for strict in (True, False):
        fresh = ts.ScopedModule(mlp, name="mlp")
        fresh.load_state_dict(state, strict=strict)
        with pytest.warns(UserWarning, match=r"held \['mlp/layer9/zzz'\].*dropped"):
            fresh(x)
        assert list(fresh.store) == NAMES and [n for n, _ in fresh.named_parameters()] == NAMES


def test_load_before_the_first_call_into_a_subclass_with_its_own_parameter():
    class Scaled(ts.ScopedModule):
        def __init__(self):
            super().__init__(name="net")
            self.temp = nn.Parameter(torch.full((1,), 2.0))

        def forward(self, x):
            return (x @ ts.get_variable("w", [2, 2])) / self.temp

    x = torch.ones(1, 2)
    source = Scaled()
    source(x)
    with torch.no_grad():
        source.temp.fill_(4.0)
    fresh = Scaled()
    fresh.load_state_dict(source.state_dict())
    torch.testing.assert_close(fresh(x), source(x), rtol=0, atol=0)
    assert fresh.temp.item() == 4.0
    assert ts.name_of(fresh.temp) == "temp" and "temp" in fresh.store._trainable
    assert [n for n, _ in fresh.named_parameters()] == ["temp", "net/w"]


# -- conversions before the first call -------------------------------------------------------------


@pytest.mark.parametrize(
    ("convert", "dtype"),
    [
        (lambda m: m.double(), torch.float64),
        (lambda m: m.to(torch.bfloat16), torch.bfloat16),
        (lambda m: m.half().float(), torch.float32),
        (lambda m: m.to("meta").to(torch.float64), torch.float64),
    ],
)
def test_conversion_before_the_first_call_applies_to_the_variables_it_makes(convert, dtype):
    def fn(x):
        step = ts.get_variable("step", [], dtype=torch.int64, trainable=False)
        return x @ ts.get_variable("w", [8, 2]) + step

    module = convert(ts.ScopedModule(fn, name="m"))
    device = "meta" if "meta" in repr(convert.__code__.co_consts) else "cpu"
    out = module(torch.ones(3, 8, dtype=dtype, device=device))
    assert out.dtype == dtype and out.device.type == device
    assert module.store["m/w"].dtype == dtype and module.store["m/w"].requires_grad
    assert module.store["m/step"].dtype == torch.int64
    assert all(p.device.type == device for p in module.parameters())
    assert module.store.policy.conversion is None  # built: later conversions act on the variables


def test_conversion_before_the_first_call_survives_copies_and_pickling():
    module = ts.ScopedModule(mlp, name="mlp").double()
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    for other in (copy.deepcopy(module), torch.load(buffer, weights_only=False)):
        assert other(torch.randn(2, 8, dtype=torch.float64)).dtype == torch.float64


def test_conversion_then_load_before_the_first_call():
    x = torch.randn(2, 8)
    source = built(x=x)
    fresh = ts.ScopedModule(mlp, name="mlp").double()
    fresh.load_state_dict(source.state_dict())
    assert all(p.dtype == torch.float64 for p in fresh.parameters())
    torch.testing.assert_close(fresh(x.double()), source(x).double())


# -- requires_grad_ ---------------------------------------------------------------------------


def test_requires_grad_leaves_non_trainable_and_integer_variables_frozen():
    def fn(x):
        step = ts.get_variable("step", [], dtype=torch.int64, trainable=False)
        mean = ts.get_variable("mean", [2], trainable=False, initializer=ts.zeros_initializer())
        return x @ ts.get_variable("w", [2, 2]) + mean + step

    module = built(fn, name="m", x=torch.ones(1, 2))
    module.requires_grad_(False)
    assert not any(p.requires_grad for p in module.parameters())
    module.requires_grad_(True)
    assert {n for n, p in module.named_parameters() if p.requires_grad} == {"m/w"}


def test_requires_grad_reaches_plain_submodules():
    class WithLinear(ts.ScopedModule):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            return self.linear(x) * ts.get_variable("s", [1])

    module = WithLinear()
    module(torch.ones(1, 2))
    module.requires_grad_(False)
    assert not any(p.requires_grad for p in module.parameters())
    module.requires_grad_()
    assert all(p.requires_grad for p in module.parameters())


def test_summary_uses_are_blank_for_parameters_get_variable_does_not_hand_out():
    class WithLinear(ts.ScopedModule):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            return self.linear(x) * ts.get_variable("s", [1])

    module = WithLinear()
    module(torch.ones(1, 2))
    rows = ts.summary(module, inputs=(torch.ones(1, 2),)).splitlines()
    row = {line.split()[0]: line.split() for line in rows[1:-1]}
    assert row["s"][-1] == "1"
    assert row["linear.weight"][-1] == "4" and row["linear.bias"][-1] == "2"  # params, no uses


# -- torch.nn.utils.prune and parametrize ------------------------------------------------------


def dense4(x):
    with ts.variable_scope("dense"):
        return x @ ts.get_variable("w", [4, 4])


def test_pruning_a_variable():
    from torch.nn.utils import prune

    module = built(dense4, name="m", x=torch.ones(1, 4))
    prune.l1_unstructured(module, "m/dense/w", amount=0.5)
    x = torch.randn(2, 4)
    pruned = module.get_parameter("m/dense/w_orig") * module.get_buffer("m/dense/w_mask")
    torch.testing.assert_close(module(x), x @ pruned)
    assert int((pruned == 0).sum()) == 8
    module(x).sum().backward()
    assert module.get_parameter("m/dense/w_orig").grad is not None


def test_a_parametrized_variable():
    from torch.nn.utils.parametrizations import weight_norm

    module = built(dense4, name="m", x=torch.ones(1, 4))
    weight_norm(module, "m/dense/w")
    x = torch.randn(2, 4)
    torch.testing.assert_close(module(x), x @ getattr(module, "m/dense/w"))
    module(x).sum().backward()
    assert module.parametrizations["m/dense/w"].original0.grad is not None
    with pytest.raises(ValueError, match="would create a new variable m/dense/v"):
        get_or_create(module.store, module._parameters, "m/dense/v", [1], reuse=None)


def test_export_or_trace_before_the_first_call_says_to_call_it_first():
    x = torch.randn(3, 8)
    module = ts.ScopedModule(mlp, name="mlp")
    with pytest.raises(
        RuntimeError, match=r"call it once on an example input before torch\.export"
    ):
        torch.export.export(module, (x,), strict=False)
    # strict export: dynamo reports the error it traced, with the message
    with pytest.raises(Exception, match=r"call it once on an example input before torch\.export"):
        torch.export.export(module, (x,), strict=True)
    with pytest.raises(
        RuntimeError, match=r"call it once on an example input before torch\.export"
    ):
        torch.jit.trace(module, (x,))
    assert not module.built and len(module.store) == 0
    module(x)
    exported = torch.export.export(module, (x,), strict=False)
    assert [n for n, _ in exported.named_parameters()] == NAMES
    torch.testing.assert_close(exported.module()(x), module(x))


# -- messages: the wrapped function, the loaded checkpoint, a doubled prefix -------------------


def _growing(x, prefix):
    return x * ts.get_variable(prefix + str(x.shape[0]), [1])


def test_a_partial_is_named_by_its_function():
    module = ts.ScopedModule(functools.partial(_growing, prefix="a"))
    module(torch.ones(1))
    assert "fn=partial(_growing)" in repr(module)
    with pytest.raises(
        ValueError, match=r"^ScopedModule\(partial\(_growing\)\) made its variables"
    ):
        module(torch.ones(2))


def test_a_named_module_is_named_once():
    module = ts.ScopedModule(functools.partial(_growing, prefix="a"), name="net")
    module(torch.ones(1))
    with pytest.raises(ValueError, match=r"^ScopedModule 'net' made its variables"):
        module(torch.ones(2))


def _dense(x):
    with ts.variable_scope("model"):
        return x @ ts.get_variable("wpe", [3, 2])


def test_a_loaded_value_of_another_shape_names_its_key_and_both_shapes():
    parent = torch.nn.Module()
    parent.enc = ts.ScopedModule(_dense)
    parent.load_state_dict({"enc.model/wpe": torch.zeros(4, 2)})
    with pytest.raises(
        ValueError,
        match=r"variable 'model/wpe': its value came from key 'enc\.model/wpe' of the state "
        r"dict given to load_state_dict\(\), before the first call, and has shape \(4, 2\), "
        r"but the code asks for shape \(3, 2\)",
    ):
        parent.enc(torch.ones(1, 3))
    assert len(parent.enc.store) == 1 and not parent.enc.built  # nothing claimed; load again
    parent.load_state_dict({"enc.model/wpe": torch.ones(3, 2)})
    assert parent.enc(torch.ones(1, 3)).tolist() == [[3.0, 3.0]]


def test_a_value_initializer_gives_the_shape_a_loaded_value_is_checked_against():
    def fn(x):
        return x @ ts.get_variable("w", initializer=torch.zeros(3, 2))

    module = ts.ScopedModule(fn)
    module.load_state_dict({"w": torch.zeros(4, 2)})
    with pytest.raises(
        ValueError, match=r"key 'w' .* shape \(4, 2\), but the code asks for shape \(3, 2\)"
    ):
        module(torch.ones(1, 3))


def test_a_doubled_prefix_is_warned_about_once():
    module = ts.ScopedModule(_dense, name="model")
    with pytest.warns(UserWarning, match=r"starts with 'model/model/'.*drop name="):
        module(torch.ones(1, 3))
    assert list(module.store) == ["model/model/wpe"]  # the names are what the code says
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module(torch.ones(1, 3))  # later calls: no warning
        ts.ScopedModule(_dense)(torch.ones(1, 3))  # no name=: no doubling, no warning
