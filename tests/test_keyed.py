"""Name-keyed initialisation (``ts.set_seed``, ``VariableStore(seed=...)``): a variable's
values are a function of (store seed, full name) only."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading

import pytest
import torch

import torchscope as ts
from torchscope import _keyed

INITIALIZERS = {
    "uniform": ts.random_uniform_initializer(-1.0, 2.0),
    "ints": ts.random_uniform_initializer(0, 100),
    "normal": ts.random_normal_initializer(0.5, 2.0),
    "truncated": ts.truncated_normal_initializer(0.5, 2.0),
    "glorot_u": ts.glorot_uniform_initializer(),
    "glorot_n": ts.glorot_normal_initializer(),
    "vs_normal": ts.variance_scaling_initializer(2.0, "fan_in", "untruncated_normal"),
    "orthogonal": ts.orthogonal_initializer(1.5),
    "constant": ts.constant_initializer(0.25),
    "kaiming": ts.init_from(torch.nn.init.kaiming_uniform_),
    "own": lambda shape, dtype=None, device=None: torch.randn(shape, dtype=dtype, device=device),
    "default": None,
}


def _spec(kind: str) -> tuple[list[int], torch.dtype]:
    return ([7, 5], torch.int32) if kind == "ints" else ([6, 4, 5], torch.float32)


def _make(store: ts.VariableStore, kinds: list[str]) -> dict[str, torch.Tensor]:
    with store.as_default():
        for kind in kinds:
            shape, dtype = _spec(kind)
            with ts.variable_scope("net"):
                ts.get_variable(kind, shape, dtype, initializer=INITIALIZERS[kind])
    return {n: p.detach().clone() for n, p in store.items()}


def _equal(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_creation_order_and_other_variables_do_not_matter():
    kinds = list(INITIALIZERS)
    first = _make(ts.VariableStore(seed=11), kinds)
    shuffled = kinds[:]
    random.Random(3).shuffle(shuffled)
    torch.manual_seed(123)  # and the global generator's state does not matter either
    second = _make(ts.VariableStore(seed=11), shuffled)
    _equal(first, second)
    alone = _make(ts.VariableStore(seed=11), ["glorot_u"])
    assert torch.equal(alone["net/glorot_u"], first["net/glorot_u"])


def test_another_seed_or_name_gives_other_values():
    a = _make(ts.VariableStore(seed=1), ["normal"])["net/normal"]
    b = _make(ts.VariableStore(seed=2), ["normal"])["net/normal"]
    assert not torch.equal(a, b)
    store = ts.VariableStore(seed=1)
    with store.as_default():
        x = ts.get_variable("x", [50])
        y = ts.get_variable("y", [50])
    assert not torch.equal(x, y)


def test_global_generator_is_neither_read_nor_advanced():
    state = torch.get_rng_state()
    _make(ts.VariableStore(seed=5), list(INITIALIZERS))
    assert torch.equal(torch.get_rng_state(), state)


def test_an_initializer_seed_keeps_its_meaning():
    init = ts.random_normal_initializer(seed=3)
    store = ts.VariableStore(seed=99)
    with store.as_default():
        w = ts.get_variable("w", [4, 4], initializer=init)
    assert torch.equal(w, init([4, 4]))


def test_without_a_store_seed_the_global_generator_decides():
    assert ts.get_default_store().seed is None
    torch.manual_seed(0)
    a = ts.get_variable("a", [3, 3])
    torch.manual_seed(0)
    with ts.variable_scope("s"):
        b = ts.get_variable("a", [3, 3])
    assert torch.equal(a, b)  # the same draws: today's behaviour, the name plays no part


def test_set_seed_sets_the_current_store_and_modules_take_it():
    ts.set_seed(4)
    assert ts.get_default_store().seed == 4
    net = ts.ScopedModule(lambda x: x @ ts.get_variable("w", [3, 3]), name="net")
    assert net.store.seed == 4
    net(torch.ones(1, 3))
    store = ts.VariableStore(seed=4)
    with store.as_default(), ts.variable_scope("net"):
        w = ts.get_variable("w", [3, 3])
    assert torch.equal(net.store["net/w"], w)
    ts.set_seed(None)
    assert ts.get_default_store().seed is None


def test_refactored_model_gets_the_same_values():
    def model_a():
        with ts.variable_scope("enc"):
            for i in range(3):
                with ts.variable_scope(f"layer{i}"):
                    ts.get_variable("w", [8, 8])
                    ts.get_variable("b", [8], initializer=ts.zeros_initializer())

    def model_b():  # biases first, layers backwards, the scope captured and re-entered
        with ts.variable_scope("enc") as enc:
            pass
        for i in reversed(range(3)):
            with ts.variable_scope(enc), ts.variable_scope(f"layer{i}"):
                ts.get_variable("b", [8], initializer=ts.zeros_initializer())
        for i in reversed(range(3)):
            with ts.variable_scope(enc), ts.variable_scope(f"layer{i}"):
                ts.get_variable("w", [8, 8])

    a, b = ts.VariableStore(seed=0), ts.VariableStore(seed=0)
    with a.as_default():
        model_a()
    with b.as_default():
        model_b()
    _equal(dict(a.items()), dict(b.items()))


def test_threads_get_the_same_values():
    store = ts.VariableStore(seed=8)
    names = [f"v{i}" for i in range(40)]

    def make(part: list[str]) -> None:
        with store.as_default():
            for name in part:
                ts.get_variable(name, [16])

    threads = [threading.Thread(target=make, args=(names[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    alone = ts.VariableStore(seed=8)
    make_alone = [names[::-1]]
    with alone.as_default():
        for name in make_alone[0]:
            ts.get_variable(name, [16])
    _equal(dict(store.items()), dict(alone.items()))


_CHILD = """
import json, torch, torchscope as ts
torch.manual_seed(77)
store = ts.VariableStore(seed=21)
with store.as_default(), ts.variable_scope("net"):
    ts.get_variable("glorot_u", [6, 4, 5])
    ts.get_variable("truncated", [6, 4, 5], initializer=ts.truncated_normal_initializer(0.5, 2.0))
print(json.dumps({n: p.flatten().tolist() for n, p in store.items()}))
"""


def test_another_process_gets_the_same_values():
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _CHILD], capture_output=True, text=True, check=True
    ).stdout
    theirs = json.loads(out.strip().splitlines()[-1])
    ours = _make(ts.VariableStore(seed=21), ["glorot_u", "truncated"])
    for name, values in theirs.items():
        assert torch.equal(torch.tensor(values), ours[name].flatten()), name


@pytest.mark.parametrize(
    "kind", ["uniform", "ints", "normal", "truncated", "glorot_u", "vs_normal"]
)
def test_any_slice_is_that_slice_of_the_whole(kind, monkeypatch):
    monkeypatch.setattr(_keyed, "CHUNK", 7)  # many chunks, slices across their borders
    init = INITIALIZERS[kind]
    shape, dtype = _spec(kind)
    key = (3, "net/x")
    with _keyed.drawing(key):
        whole = init(shape, dtype=dtype).flatten()
    n = whole.numel()
    for start, stop in [(0, n), (0, 0), (5, 6), (6, 22), (13, n), (n, n)]:
        assert torch.equal(init.flat(tuple(shape), dtype, start, stop, key), whole[start:stop])


def test_meta_creation_draws_nothing_and_keeps_the_global_generator():
    state = torch.get_rng_state()
    store = ts.VariableStore(seed=1)
    with store.as_default(), torch.device("meta"):
        w = ts.get_variable("w", [1000, 1000])
    assert w.is_meta
    assert torch.equal(torch.get_rng_state(), state)


def test_seed_must_be_an_int():
    with pytest.raises(TypeError, match="seed must be an int or None, got"):
        ts.VariableStore(seed=1.5)
    with pytest.raises(TypeError, match="seed must be an int or None"):
        ts.set_seed("0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_and_cpu_get_the_same_values():
    kinds = [k for k in INITIALIZERS if k != "own"]  # one's own callable draws on its device
    on_cpu = _make(ts.VariableStore(seed=6), kinds)
    store = ts.VariableStore(seed=6)
    with torch.device("cuda"):
        on_cuda = _make(store, kinds)
    assert all(v.is_cuda for v in on_cuda.values())
    _equal(on_cpu, {n: v.cpu() for n, v in on_cuda.items()})
