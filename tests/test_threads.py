"""Threads: scope stacks and name counters are per thread; variables are shared,
and concurrent creation in one store loses nothing and creates nothing twice."""

import random
import sys
import threading
import time

import pytest
import torch

import torchscope as ts


@pytest.fixture
def fast_switching():
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def run_threads(target, n):
    errors = []

    def wrapped(i):
        try:
            target(i)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_open_scopes_are_invisible_to_other_threads():
    barrier = threading.Barrier(2, timeout=10)
    seen = {}

    def opener(_):
        with ts.variable_scope("a", reuse=True), ts.name_scope("ns"):
            barrier.wait()  # 1: scope open
            barrier.wait()  # 2: the other thread has looked
            seen["opener"] = (ts.get_variable_scope().name, ts.get_name_scope())

    def observer(_):
        barrier.wait()  # 1
        seen["observer"] = (
            ts.get_variable_scope().name,
            ts.get_variable_scope().reuse,
            ts.get_name_scope(),
        )
        with ts.variable_scope("b") as b:
            seen["observer_scope"] = b.name
            v = ts.get_variable("v", [1])
            seen["observer_var"] = ts.name_of(v)
        barrier.wait()  # 2

    run_threads(lambda i: (opener if i == 0 else observer)(i), 2)
    assert seen["opener"] == ("a", "a/ns")
    assert seen["observer"] == ("", False, "")
    assert seen["observer_scope"] == "b"
    assert seen["observer_var"] == "b/v"
    # The variable is in the shared default store.
    assert list(ts.get_default_store()) == ["b/v"]


def test_name_counters_are_per_thread():
    barrier = threading.Barrier(4, timeout=10)
    names = {}

    def work(i):
        got = []
        for _ in range(3):
            barrier.wait()
            with ts.name_scope("foo") as ns:
                got.append(ns)
            with ts.variable_scope(None, default_name="layer") as scope:
                got.append(scope.name)
        names[i] = got

    run_threads(work, 4)
    expected = ["foo/", "layer", "foo_1/", "layer_1", "foo_2/", "layer_2"]
    assert all(got == expected for got in names.values())
    # The main thread's counters were not touched.
    with ts.name_scope("foo") as ns:
        assert ns == "foo/"


def test_as_default_is_per_thread():
    store = ts.VariableStore()
    default = ts.get_default_store()
    barrier = threading.Barrier(2, timeout=10)
    seen = {}

    def inside(_):
        with store.as_default():
            barrier.wait()
            barrier.wait()

    def outside(_):
        barrier.wait()
        seen["outside"] = ts.get_default_store()
        barrier.wait()

    run_threads(lambda i: (inside if i == 0 else outside)(i), 2)
    assert seen["outside"] is default


def test_concurrent_creation_loses_nothing_and_creates_nothing_twice(fast_switching):
    n_threads, n_names = 8, 100
    store = ts.VariableStore()
    barrier = threading.Barrier(n_threads, timeout=10)
    got = {}

    def work(k):
        order = list(range(n_names))
        random.Random(k).shuffle(order)
        shared, own = {}, {}
        with store.as_default():
            barrier.wait()
            for i in order:
                with ts.variable_scope("shared", reuse=ts.AUTO_REUSE):
                    shared[i] = ts.get_variable(
                        f"v{i}", [4], initializer=ts.constant_initializer(i)
                    )
                with ts.variable_scope(f"t{k}", reuse=ts.AUTO_REUSE):
                    own[i] = ts.get_variable(f"v{i}", [4])
                    assert ts.get_variable(f"v{i}", [4]) is own[i]
        got[k] = (shared, own)

    run_threads(work, n_threads)
    assert len(store) == n_names + n_threads * n_names
    first = got[0][0]
    for k in range(n_threads):
        shared, own = got[k]
        for i in range(n_names):
            assert shared[i] is first[i]
            assert shared[i] is store[f"shared/v{i}"]
            assert own[i] is store[f"t{k}/v{i}"]
    assert all(torch.all(first[i] == i) for i in range(n_names))
    # Collections agree with the dict, each variable once.
    assert len(store.trainable_variables()) == len(store)
    assert len({id(v) for v in store.global_variables()}) == len(store)


def test_racing_creation_without_reuse_one_wins(fast_switching):
    store = ts.VariableStore()
    barrier = threading.Barrier(8, timeout=10)
    results = []

    def work(_):
        with store.as_default():
            barrier.wait()
            for i in range(20):
                try:
                    results.append(("ok", i, ts.get_variable(f"v{i}", [2])))
                except ValueError as error:
                    assert "already exists" in str(error)
                    results.append(("error", i, None))

    run_threads(work, 8)
    for i in range(20):
        wins = [r for r in results if r[1] == i and r[0] == "ok"]
        assert len(wins) == 1
        assert wins[0][2] is store[f"v{i}"]
    assert len(store) == 20
    assert len(results) == 160


def test_module_calls_in_many_threads_each_put_back_their_threads_context(fast_switching):
    module = ts.ScopedModule(lambda x: x * ts.get_variable("g", [1]), name="m")
    module(torch.ones(1))
    stores = [ts.VariableStore() for _ in range(4)]
    barrier = threading.Barrier(4, timeout=10)

    def work(i):
        with stores[i].as_default(), ts.variable_scope(f"t{i}"):
            barrier.wait()
            for _ in range(50):
                module(torch.ones(1))
                assert ts.get_default_store() is stores[i]
                assert ts.get_variable_scope().name == f"t{i}"
            ts.get_variable("mine", [1])

    run_threads(work, 4)
    assert [list(s) for s in stores] == [[f"t{i}/mine"] for i in range(4)]
    assert list(module.store) == ["m/g"]


def test_reading_a_store_while_another_thread_creates(fast_switching):
    # Readers iterate the store's dicts; creation adds to them. Each read must see a
    # snapshot, not raise "dictionary changed size during iteration".
    store = ts.VariableStore()
    stop = threading.Event()

    def create(_):
        with store.as_default():
            for j in range(100_000):
                if stop.is_set():
                    return
                ts.get_variable(
                    f"v{j}",
                    [1],
                    regularizer=lambda v: v.sum(),
                    constraint=lambda v: v.clamp(-1, 1),
                )
                if j % 7 == 0:
                    ts.add_to_collection(ts.GraphKeys.GLOBAL_VARIABLES, j)

    def read(_):
        deadline = time.monotonic() + 1.5
        reads = 0
        try:
            while time.monotonic() < deadline:
                store.trainable_variables()
                store.global_variables()
                store.regularization_losses()
                store.apply_constraints()
                store.state_dict()
                ts.summary(store)
                reads += 1
        finally:
            stop.set()
        assert reads > 0

    run_threads(lambda i: (create if i == 0 else read)(i), 2)
    assert len(store) > 0
