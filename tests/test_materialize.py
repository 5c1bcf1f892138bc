"""Meta building and ``ts.materialize``: values equal to an eager build with the same seed,
names, flags and collections kept, clear errors."""

from __future__ import annotations

import pytest
import torch
from test_keyed import INITIALIZERS, _spec

import torchscope as ts


def _model(x: torch.Tensor) -> torch.Tensor:
    with ts.variable_scope("enc", initializer=ts.truncated_normal_initializer(stddev=0.1)):
        w = ts.get_variable("w", [3, 4])  # the scope's initializer
        b = ts.get_variable("b", [4], initializer=ts.zeros_initializer())
        step = ts.get_variable("step", [], torch.int64, ts.zeros_initializer(), trainable=False)
    for kind, init in INITIALIZERS.items():
        shape, dtype = _spec(kind)
        ts.get_variable(kind, shape, dtype, initializer=init)
    ts.get_variable("value", initializer=[[1.0, 2.0]])
    return x @ w + b + step


def _built(meta: bool, seed: int | None = 5) -> ts.ScopedModule:
    net = ts.ScopedModule(_model, name="net")
    net.store.seed = seed
    if meta:
        with torch.device("meta"):
            net(torch.ones(1, 3))
    else:
        net(torch.ones(1, 3))
    return net


def test_meta_build_allocates_nothing_and_summary_counts_bytes():
    net = _built(meta=True)
    assert all(p.is_meta for p in net.parameters())
    text = ts.summary(net)
    assert "  meta  " in text.splitlines()[3]  # the device column
    meta_line = text.splitlines()[-1]
    total = sum(p.numel() for p in net.parameters())
    size = sum(p.numel() * p.element_size() for p in net.parameters())
    assert meta_line.startswith(f"meta: {len(net.store)} variables, {total:,} parameters")
    assert f"{size:,} bytes" in meta_line
    assert "meta:" not in ts.summary(_built(meta=False))


def test_materialized_values_equal_an_eager_build():
    eager = _built(meta=False)
    net = _built(meta=True)
    torch.manual_seed(99)  # the global generator plays no part
    ts.materialize(net)
    assert list(net.state_dict()) == list(eager.state_dict())
    for name, value in eager.state_dict().items():
        got = net.state_dict()[name]
        assert got.device.type == "cpu" and got.dtype == value.dtype, name
        assert torch.equal(got, value), name
    for (n1, p1), (n2, p2) in zip(net.named_parameters(), eager.named_parameters(), strict=True):
        assert (n1, p1.requires_grad) == (n2, p2.requires_grad)
        assert ts.name_of(p1) == n1
        assert p1.name == p2.name == n1 + ":0"  # TensorFlow's v.name, kept through the swap
    assert [ts.name_of(v) for v in net.store.trainable_variables()] == [
        ts.name_of(v) for v in eager.store.trainable_variables()
    ]
    assert net.store.global_variables()[0] is net.store["net/enc/w"]
    net(torch.ones(1, 3))  # a later call reuses the real variables
    assert not any(p.is_meta for p in net.parameters())


def test_custom_getter_initializer_is_the_one_used():
    def getter(getter, name, *args, **kwargs):
        kwargs["initializer"] = ts.constant_initializer(3.0)
        return getter(name, *args, **kwargs)

    def fn(x):
        with ts.variable_scope("g", custom_getter=getter):
            return x * ts.get_variable("v", [2])

    net = ts.ScopedModule(fn)
    with torch.device("meta"):
        net(torch.ones(2))
    ts.materialize(net)
    assert torch.equal(net.store["g/v"].detach(), torch.full((2,), 3.0))


def test_a_store_and_an_outer_module():
    store = ts.VariableStore(seed=1)
    with store.as_default(), torch.device("meta"):
        ts.get_variable("w", [2, 2])
    ts.materialize(store)
    assert store["w"].device.type == "cpu"

    outer = torch.nn.Sequential(ts.ScopedModule(lambda x: x * ts.get_variable("s", [1])))
    with torch.device("meta"):
        outer(torch.ones(1))
    ts.materialize(outer, "cpu")
    assert not outer[0].store["s"].is_meta


def test_optimizer_built_before_is_refused_after_is_fine():
    net = _built(meta=True)
    early = torch.optim.SGD(net.parameters(), lr=0.1)
    ts.materialize(net)
    with pytest.raises(ValueError, match=r"built before ts\.materialize"):
        ts.check_optimizer(early, net)
    late = torch.optim.SGD(net.parameters(), lr=0.1)
    ts.check_optimizer(late, net)
    loss = net(torch.ones(1, 3)).sum()
    loss.backward()
    late.step()


def test_errors():
    with pytest.raises(TypeError, match=r"takes a ts\.VariableStore, a ts\.ScopedModule"):
        ts.materialize(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="got a str"):
        ts.materialize("net")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="found no variable on the meta device"):
        ts.materialize(_built(meta=False))
    net = _built(meta=True)
    with pytest.raises(ValueError, match="needs a real device"):
        ts.materialize(net, "meta")
    store = ts.VariableStore()
    with store.as_default():
        ts.get_variable("w", [2])
    store.to("meta")
    with pytest.raises(ValueError, match="'w' is on the meta device but was not made there"):
        ts.materialize(store)


def test_without_a_seed_values_come_from_the_global_generator():
    net = _built(meta=True, seed=None)
    ts.materialize(net)
    assert not any(p.is_meta for p in net.parameters())


def test_init_from_checkpoint_refuses_meta_variables_then_restores_after_materialize(tmp_path):
    with ts.variable_scope("old"):
        ts.get_variable("kernel", [2, 3], initializer=ts.constant_initializer(7.0))
    path = ts.train.Saver().save(str(tmp_path / "model.ckpt"))
    net = ts.ScopedModule(lambda x: x @ ts.get_variable("kernel", [2, 3]), name="new")
    net.store.seed = 0
    with torch.device("meta"):
        net(torch.ones(1, 2))
    with pytest.raises(ValueError, match=r"meta device \(new/kernel\)"):
        ts.train.init_from_checkpoint(path, {"old/": "new/"}, store=net)
    ts.materialize(net)
    ts.train.init_from_checkpoint(path, {"old/": "new/"}, store=net)
    assert torch.equal(net.store["new/kernel"].detach(), torch.full((2, 3), 7.0))
