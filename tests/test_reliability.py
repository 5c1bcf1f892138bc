"""What a hostile user finds: shared memory, templates under threads, loads before and after
the first call, the store's bookkeeping bypassed, callbacks that return the wrong thing,
collections read inside torch.compile, names and shapes refused alike on every path.
(Injected faults are tests/test_faults.py's.)"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

import torchscope as ts

# -- every variable owns fresh, dense memory -------------------------------------------------


def test_two_variables_made_from_one_tensor_do_not_share_memory():
    value = torch.ones(3)
    a = ts.get_variable("a", [3], initializer=lambda shape, dtype=None, device=None: value)
    b = ts.get_variable("b", [3], initializer=lambda shape, dtype=None, device=None: value)
    c = ts.get_variable("c", initializer=value)
    with torch.no_grad():
        a += 1
    assert b.tolist() == [1.0, 1.0, 1.0] and c.tolist() == [1.0, 1.0, 1.0]
    assert value.tolist() == [1.0, 1.0, 1.0]
    pointers = {a.data_ptr(), b.data_ptr(), c.data_ptr(), value.data_ptr()}
    assert len(pointers) == 4


def test_an_expanded_initializer_result_becomes_a_dense_variable():
    expanded = torch.tensor(2.0).expand(4, 3)
    w = ts.get_variable("w", [4, 3], initializer=lambda shape, dtype=None, device=None: expanded)
    assert w.is_contiguous() and w.stride() == (3, 1)
    opt = torch.optim.SGD([w], lr=0.1)
    w.sum().backward()
    opt.step()  # an expanded parameter would fail here
    assert torch.allclose(w, torch.full((4, 3), 1.9))


# -- templates and threads ------------------------------------------------------------------


def _first_calls_from_threads(store: ts.VariableStore, template: ts.Template, n: int) -> list:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def call() -> None:
        try:
            with store.as_default():
                barrier.wait()
                template(torch.ones(2))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_eight_threads_making_a_templates_first_call_share_one_set_of_variables():
    for _ in range(25):
        store = ts.VariableStore()
        template = ts.make_template("t", lambda x: x * ts.get_variable("w", [2]))
        errors = _first_calls_from_threads(store, template, 8)
        assert not errors, errors[0]
        assert list(store) == ["t/w"]


def test_a_built_template_is_called_while_another_thread_creates_variables():
    store = ts.VariableStore()
    template = ts.make_template("t", lambda x: x * ts.get_variable("w", [2]))
    with store.as_default():
        template(torch.ones(2))
    stop = threading.Event()
    errors: list[BaseException] = []

    def create() -> None:
        i = 0
        with store.as_default():
            while not stop.is_set():
                ts.get_variable(f"other/v{i}", [1])
                i += 1

    creator = threading.Thread(target=create)
    creator.start()
    try:
        with store.as_default():
            for _ in range(300):
                try:
                    template(torch.ones(2))
                except BaseException as e:
                    errors.append(e)
    finally:
        stop.set()
        creator.join()
    assert not errors, errors[0]


# -- loads: all or nothing, the same before and after the first call ------------------------


def _net() -> ts.ScopedModule:
    return ts.ScopedModule(lambda x: x * ts.get_variable("w", [2]), name="net")


def test_a_checkpoint_of_the_wrong_shape_before_the_first_call_is_named_and_recoverable():
    module = _net()
    module.load_state_dict({"net/w": torch.ones(3)})
    with pytest.raises(
        ValueError, match=r"'net/w'.*key 'net/w'.*shape \(3,\).*asks for shape \(2,\)"
    ):
        module(torch.ones(2))
    module.load_state_dict({"net/w": torch.full((2,), 5.0)})  # a right one replaces it
    assert module(torch.ones(2)).tolist() == [5.0, 5.0]


def test_a_float64_checkpoint_gives_the_same_module_before_and_after_the_first_call():
    state = {"net/w": torch.tensor([1.5, 2.5], dtype=torch.float64)}
    before, after = _net(), _net()
    before.load_state_dict(state)
    before(torch.ones(2))
    after(torch.ones(2))
    after.load_state_dict(state)
    for module in (before, after):
        w = module.store["net/w"]
        assert w.dtype == torch.float32 and w.requires_grad
        assert w.tolist() == [1.5, 2.5]


# -- the store's bookkeeping cannot be bypassed ----------------------------------------------


def test_a_store_refuses_parameters_that_bypass_get_variable():
    store = ts.VariableStore()
    with store.as_default():
        ts.get_variable("w", [2])
    with pytest.raises(TypeError, match="get_variable"):
        store.register_parameter("x", torch.nn.Parameter(torch.ones(1)))
    with pytest.raises(TypeError, match="get_variable"):
        store.x = torch.nn.Parameter(torch.ones(1))
    with pytest.raises(TypeError, match="get_variable"):
        delattr(store, "w")
    assert list(store) == ["w"] and "x" not in store._parameters


# -- callbacks returning the wrong thing ----------------------------------------------------


@pytest.mark.parametrize(
    ("result", "error", "message"),
    [
        (None, TypeError, r"initializer .* of variable 'v' returned None"),
        ("text", TypeError, r"of variable 'v' returned str"),
        (torch.ones(2, dtype=torch.float64), ValueError, r"variable 'v'.*float64.*float32"),
        (torch.ones(2, device="meta"), ValueError, r"variable 'v'.*meta"),
    ],
    ids=["none", "str", "dtype", "meta"],
)
def test_initializer_results_that_cannot_be_the_value_are_named(result, error, message):
    with pytest.raises(error, match=message):
        ts.get_variable("v", [2], initializer=lambda shape, dtype=None, device=None: result)
    assert len(ts.get_default_store()) == 0


def test_an_unavailable_device_is_named():
    with pytest.raises((RuntimeError, ValueError, AssertionError), match="'v'"):
        ts.get_variable("v", [2], device="cuda:99")
    assert len(ts.get_default_store()) == 0


def test_a_shape_the_allocator_refuses_is_named():
    with pytest.raises(RuntimeError, match="'v'"):
        ts.get_variable("v", [2**62], initializer=ts.zeros_initializer())
    assert len(ts.get_default_store()) == 0


@pytest.mark.parametrize(
    ("regularizer", "message"),
    [
        (lambda v: v * 2, r"regularizer .* of variable 'v' returned a tensor of shape \[2\]"),
        (lambda v: "text", r"regularizer .* of variable 'v' returned str"),
    ],
    ids=["not-a-scalar", "str"],
)
def test_a_regularizer_must_return_a_scalar_loss(regularizer, message):
    with pytest.raises((TypeError, ValueError), match=message):
        ts.get_variable("v", [2], regularizer=regularizer)
    assert len(ts.get_default_store()) == 0


@pytest.mark.parametrize(
    ("returned", "message"),
    [(None, "returned None"), ("w", "returned str")],
    ids=["none", "str"],
)
def test_a_custom_getter_must_return_a_tensor(returned, message):
    def getter(getter: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        getter(name, *args, **kwargs)
        return returned

    with ts.variable_scope("s", custom_getter=getter), pytest.raises(TypeError, match=message):
        ts.get_variable("v", [2])
    assert len(ts.get_default_store()) == 0  # what the real getter made is taken back


def test_an_initializer_that_asks_for_its_own_variable_fails_clearly():
    def init(shape: Any, dtype: Any = None, device: Any = None) -> torch.Tensor:
        return ts.get_variable("v", shape) * 2

    with pytest.raises(RuntimeError, match=r"'v'.*while it is being made"):
        ts.get_variable("v", [2], initializer=init)
    assert len(ts.get_default_store()) == 0


def test_an_initializer_that_makes_another_variable_works():
    def init(shape: Any, dtype: Any = None, device: Any = None) -> torch.Tensor:
        return ts.get_variable("base", shape, initializer=ts.ones_initializer()).detach() * 2

    v = ts.get_variable("v", [2], initializer=init)
    assert v.tolist() == [2.0, 2.0]
    assert list(ts.get_default_store()) == ["base", "v"]


# -- collections under torch.compile(fullgraph=True) -----------------------------------------


def test_collections_are_read_inside_a_fullgraph_compiled_forward():
    def forward(x: torch.Tensor) -> torch.Tensor:
        w = ts.get_variable("w", [2], regularizer=lambda v: v.abs().sum())
        return (x * w).sum() + ts.regularization_loss() + len(ts.trainable_variables())

    module = ts.ScopedModule(forward)
    x = torch.ones(2)
    eager = module(x)
    compiled = torch.compile(module, fullgraph=True)
    torch.testing.assert_close(compiled(x), eager)


# -- names and shapes: the same answer on every path ----------------------------------------


def test_an_invalid_name_is_reported_as_invalid_under_reuse():
    with (
        ts.variable_scope("s", reuse=True),
        pytest.raises(ValueError, match=r"'s/a\.b' is not valid"),
    ):
        ts.get_variable("a.b")


@pytest.mark.parametrize("shape", [[2.0], [True], (2.5,)], ids=["float", "bool", "fraction"])
def test_float_and_bool_dimensions_are_refused_on_the_reuse_path_too(shape):
    ts.get_variable("w", [2] if shape != [True] else [1])
    with (
        ts.variable_scope(ts.get_variable_scope(), reuse=True),
        pytest.raises(TypeError, match="not an int"),
    ):
        ts.get_variable("w", shape)


def test_a_constraint_that_raises_is_named_and_nothing_is_written():
    """Every constraint runs before any result is written: the one that fails names its
    variable (its exception keeps its type), and the other variable keeps its value."""

    def halve(v: torch.Tensor) -> torch.Tensor:
        return v / 2

    def broken(v: torch.Tensor) -> torch.Tensor:
        raise KeyError("no such projection")

    a = ts.get_variable("a", initializer=[4.0, 8.0], constraint=halve)
    b = ts.get_variable("b", initializer=[1.0], constraint=broken)
    with pytest.raises(KeyError, match="no such projection") as caught:
        ts.apply_constraints()
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "constraint" in notes and "variable 'b'" in notes and "wrote no result" in notes
    assert a.tolist() == [4.0, 8.0] and b.tolist() == [1.0]
