"""ScopedModule under torch.compile, torch.export and torch.func."""

import copy
import threading

import pytest
import torch
from torch._dynamo.testing import CompileCounter
from torch.func import functional_call, grad, stack_module_state, vmap

import torchscope as ts


def mlp(x):
    for i in range(3):
        with ts.variable_scope(f"layer{i}"):
            w = ts.get_variable("w", [x.shape[-1], 16])
            b = ts.get_variable("b", [16], initializer=ts.zeros_initializer())
            with ts.name_scope("act"):
                x = torch.relu(x @ w + b)
    return x.sum(-1)


def built(name="mlp"):
    module = ts.ScopedModule(mlp, name=name)
    module(torch.randn(4, 8))
    return module


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_no_graph_breaks():
    module = built()
    explanation = torch._dynamo.explain(module)(torch.randn(4, 8))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_fullgraph_compile_matches_eager_and_does_not_recompile():
    module = built()
    counter = CompileCounter()
    compiled = torch.compile(module, backend=counter, fullgraph=True)
    for _ in range(3):
        x = torch.randn(4, 8)
        torch.testing.assert_close(compiled(x), module(x))
    assert counter.frame_count == 1


def test_compiled_module_does_not_recompile_for_the_callers_contexts():
    """What is open around a call (as_default blocks, scopes, another module's call) is
    not the module's business: one compilation serves every caller."""
    module = built()
    counter = CompileCounter()
    compiled = torch.compile(module, backend=counter, fullgraph=True)
    x = torch.randn(4, 8)
    expected = module(x)
    a, b = ts.VariableStore(), ts.VariableStore()
    outer = ts.ScopedModule(lambda x: compiled(x) * ts.get_variable("scale", [1]), name="outer")
    outer(x)
    ns_outer = ts.ScopedModule(lambda x: compiled(x), name="ns_outer")

    def callers():
        yield "top level", lambda: compiled(x)
        with a.as_default():
            yield "as_default", lambda: compiled(x)
            with b.as_default(), ts.variable_scope("deep"), ts.name_scope("ops"):
                yield "two as_default blocks and scopes", lambda: compiled(x)
        yield "another ScopedModule's call", lambda: outer(x) / outer.store["outer/scale"]
        with a.as_default():
            yield "a module call inside as_default", lambda: ns_outer(x)

    for where, call in callers():
        torch.testing.assert_close(call(), expected, msg=where)
        assert counter.frame_count == 1, f"recompiled for a call from {where}"
    assert ts.get_default_store() is not a and ts.get_variable_scope().name == ""
    assert len(a) == len(b) == 0 and list(outer.store) == ["outer/scale"]


def test_eager_calls_between_compiled_calls_do_not_recompile():
    """Eager calls share cached scopes (and may change them); a compiled call must not
    depend on them."""

    def changes_its_scope(x):
        ts.get_variable_scope().set_initializer(ts.zeros_initializer())
        with ts.variable_scope("layer0"):
            return x * ts.get_variable("g", [1])

    module = built()
    counter = CompileCounter()
    compiled = torch.compile(module, backend=counter, fullgraph=True)
    x = torch.randn(4, 8)
    compiled(x)
    same_name = ts.ScopedModule(changes_its_scope, name="mlp")  # the same root scope name
    for other in (module, built(), same_name, same_name, ts.ScopedModule(mlp, name="mlp")):
        other(x)
        compiled(x)
    assert counter.frame_count == 1


def test_compiled_module_puts_back_the_callers_context():
    module = built()
    compiled = torch.compile(module, backend=CompileCounter(), fullgraph=True)
    store = ts.VariableStore()
    with store.as_default(), ts.variable_scope("s"):
        compiled(torch.randn(4, 8))
        assert ts.get_default_store() is store
        assert ts.get_variable_scope().name == "s"
        v = ts.get_variable("v", [1])
    assert ts.name_of(v) == "s/v" and list(store) == ["s/v"]
    compiled(torch.randn(4, 8))
    assert ts.get_default_store() is not store


def test_compiled_module_in_another_thread_leaves_this_threads_context_alone():
    module = built()
    compiled = torch.compile(module, backend=CompileCounter(), fullgraph=True)
    compiled(torch.randn(4, 8))
    store = ts.VariableStore()
    seen = []

    def worker():
        seen.append(ts.get_default_store() is not store)
        compiled(torch.randn(4, 8))
        seen.append(ts.get_default_store() is not store)

    with store.as_default():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(timeout=60)
        assert ts.get_default_store() is store
    assert seen == [True, True]


def test_nested_scoped_modules_name_reuse_and_compile_once():
    class Block(ts.ScopedModule):
        def __init__(self):
            super().__init__(name="block")
            self.inner = ts.ScopedModule(mlp, name="mlp")

        def forward(self, x):
            with ts.variable_scope("proj"):
                w = ts.get_variable("w", [8, 8])
            return self.inner(x @ w)

    block = Block()
    x = torch.randn(4, 8)
    first = block(x)
    params = dict(block.named_parameters())
    inner = [f"mlp/layer{i}/{v}" for i in range(3) for v in "wb"]
    assert list(params) == ["block/proj/w"] + [f"inner.{n}" for n in inner]
    assert list(block.store) == ["block/proj/w"] and list(block.inner.store) == inner
    counter = CompileCounter()
    compiled = torch.compile(block, backend=counter, fullgraph=True)
    for _ in range(3):
        torch.testing.assert_close(compiled(x), first)
    assert counter.frame_count == 1
    assert all(p is q for p, q in zip(params.values(), block.parameters(), strict=True))


def test_inductor_compile_matches_eager():
    module = built()
    compiled = torch.compile(module, fullgraph=True)
    x = torch.randn(4, 8)
    torch.testing.assert_close(compiled(x), module(x))


def test_compiled_training_step_updates_the_store_variables():
    module = built()
    counter = CompileCounter()
    compiled = torch.compile(module, backend=counter, fullgraph=True)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    before = module.store["mlp/layer0/w"].detach().clone()
    for _ in range(3):
        loss = compiled(torch.randn(4, 8)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(before, module.store["mlp/layer0/w"])
    assert counter.frame_count == 1


def test_compile_of_a_plain_function_using_the_default_store(ts_store):
    def f(x):
        with ts.variable_scope("f", reuse=ts.AUTO_REUSE):
            return x @ ts.get_variable("w", [8, 2])

    f(torch.ones(1, 8))
    counter = CompileCounter()
    compiled = torch.compile(f, backend=counter, fullgraph=True)
    x = torch.randn(3, 8)
    torch.testing.assert_close(compiled(x), f(x))
    compiled(torch.randn(3, 8))
    assert counter.frame_count == 1


def test_module_compiled_in_place_compiles_once():
    """module.compile() compiles nn.Module's call inside ScopedModule's own call (which runs
    eagerly): the scopes it re-enters must not become guards that the next call fails."""
    module = built()
    x = torch.randn(4, 8)
    expected = module(x)
    counter = CompileCounter()
    module.compile(backend=counter, fullgraph=True)
    for _ in range(4):
        torch.testing.assert_close(module(x), expected)
    assert counter.frame_count == 1


def test_compiled_function_entering_scopes_for_the_first_time_compiles_once(ts_store):
    """A traced scope entry does not fill the re-entry cache (the next call would find the
    entry the trace added, fail its guard and recompile)."""
    with ts.variable_scope("enc"), ts.variable_scope("inner"):
        ts.get_variable("w", [8, 2])

    def f(x):
        with ts.variable_scope("enc", reuse=True), ts.variable_scope("inner"):
            return x @ ts.get_variable("w", [8, 2])

    counter = CompileCounter()
    compiled = torch.compile(f, backend=counter, fullgraph=True)
    x = torch.randn(3, 8)
    for _ in range(3):
        torch.testing.assert_close(compiled(x), x @ ts_store["enc/inner/w"])
    assert counter.frame_count == 1
    assert f(x).shape == (3, 2)  # an eager call fills the cache: one recompile, then none
    for _ in range(3):
        compiled(x)
    assert counter.frame_count == 2


def test_export_keeps_full_variable_names():
    module = built()
    x = torch.randn(4, 8)
    program = torch.export.export(module, (x,))
    names = [
        "mlp/layer0/w",
        "mlp/layer0/b",
        "mlp/layer1/w",
        "mlp/layer1/b",
        "mlp/layer2/w",
        "mlp/layer2/b",
    ]
    assert list(program.graph_signature.parameters) == names
    assert list(program.state_dict) == names
    torch.testing.assert_close(program.module()(x), module(x))


def test_functional_call_substitutes_what_get_variable_hands_out():
    module = built()
    x = torch.randn(4, 8)
    params = {name: torch.zeros_like(p) for name, p in module.named_parameters()}
    assert functional_call(module, params, (x,)).abs().sum() == 0
    assert module(x).abs().sum() > 0  # the module's own variables are untouched


def test_functional_grad_matches_autograd():
    module = built()
    x = torch.randn(4, 8)
    params = {name: p.detach() for name, p in module.named_parameters()}

    def loss(p):
        return functional_call(module, p, (x,)).pow(2).mean()

    grads = grad(loss)(params)
    module.zero_grad()
    module(x).pow(2).mean().backward()
    for name, p in module.named_parameters():
        torch.testing.assert_close(grads[name], p.grad)


def test_vmap_over_an_ensemble():
    models = [built() for _ in range(3)]
    params, buffers = stack_module_state(models)
    assert sorted(params) == sorted(n for n, _ in models[0].named_parameters())
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.randn(4, 8)

    def run(p, b, x):
        return functional_call(base, (p, b), (x,))

    out = vmap(run, in_dims=(0, 0, None))(params, buffers, x)
    for i, model in enumerate(models):
        torch.testing.assert_close(out[i], model(x))


def test_a_shape_mismatch_under_compile_reports_the_variable():
    module = ts.ScopedModule(lambda x: x @ ts.get_variable("w", [x.shape[-1], 4]), name="m")
    module(torch.ones(2, 4))
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    compiled(torch.ones(2, 4))
    # The second shape makes dynamo trace the size as dynamic; the error is the ValueError.
    with pytest.raises(Exception, match=r"Trying to share variable m/w, but specified shape"):
        compiled(torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"specified shape \(5, 4\) and found shape \(4, 4\)"):
        module(torch.ones(2, 5))
