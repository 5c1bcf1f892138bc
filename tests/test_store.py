"""VariableStore: an nn.Module over an nn.ParameterDict keyed by full names; the
default store; checkpoints; names; copies; and failed calls that change nothing."""

import copy
import io
import pickle

import pytest
import torch
from torch import nn

import torchscope as ts


def build():
    with ts.variable_scope("conv1"):
        ts.get_variable("weights", [3, 3, 2, 4])
        ts.get_variable("biases", [4], initializer=ts.zeros_initializer())
    with ts.variable_scope("dense", regularizer=lambda v: (v**2).sum()):
        ts.get_variable("w", [4, 2])
        ts.get_variable("step", [], dtype=torch.int64, trainable=False)


NAMES = ["conv1/weights", "conv1/biases", "dense/w", "dense/step"]


def snapshot(store):
    """Everything a failed call must leave alone."""
    return (
        list(store),
        [id(v) for v in store.variables()],
        [v.detach().clone() for v in store.variables()],
        [id(v) for v in store.trainable_variables()],
        [id(v) for v in store.global_variables()],
        {k: list(v) for k, v in store._collections.items()},
        len(store.regularization_losses()),
        list(store.state_dict()),
    )


def assert_same(a, b):
    assert a[0] == b[0] and a[1] == b[1] and a[3:] == b[3:]
    for x, y in zip(a[2], b[2], strict=True):
        assert torch.equal(x, y)


# -- the module ----------------------------------------------------------------------------------


def test_store_is_a_module_and_a_parameter_dict():
    store = ts.VariableStore()
    assert isinstance(store, nn.Module)
    assert isinstance(store, nn.ParameterDict)
    with store.as_default():
        build()
    assert list(store) == NAMES
    assert store.keys() == NAMES
    assert len(store) == 4
    assert "conv1/weights" in store and "nope" not in store
    assert [n for n, _ in store.named_parameters()] == NAMES
    assert list(store.parameters()) == store.variables()
    assert [k for k, _ in store.items()] == NAMES
    assert store.values() == store.variables()
    assert store.get("nope") is None
    assert store.get("conv1/biases") is store["conv1/biases"]
    assert "4 variables" in repr(store)


def test_missing_key():
    with pytest.raises(KeyError, match=r"no variable named 'nope' in this store"):
        ts.get_default_store()["nope"]


def test_store_parameters_go_to_an_optimizer():
    store = ts.VariableStore()
    with store.as_default():
        w = ts.get_variable("w", initializer=[1.0, 2.0])
    opt = torch.optim.SGD(store.parameters(), lr=0.5)
    (w**2).sum().backward()
    opt.step()
    assert w.detach().tolist() == [0.0, 0.0]


def test_to_double_keeps_names():
    store = ts.VariableStore()
    with store.as_default():
        build()
    store.double()
    assert list(store) == NAMES
    assert store["dense/w"].dtype == torch.float64
    assert store["dense/step"].dtype == torch.int64
    assert ts.name_of(store["dense/w"]) == "dense/w"


# -- the default store ---------------------------------------------------------------------------


def test_default_store_and_as_default_nesting():
    default = ts.get_default_store()
    a, b = ts.VariableStore(), ts.VariableStore()
    with a.as_default() as entered:
        assert entered is a
        assert ts.get_default_store() is a
        va = ts.get_variable("v", [1])
        with b.as_default():
            assert ts.get_default_store() is b
            vb = ts.get_variable("v", [1])
        assert ts.get_default_store() is a
    assert ts.get_default_store() is default
    assert va is not vb
    assert list(a) == ["v"] and list(b) == ["v"] and len(default) == 0


def test_scope_state_is_per_store():
    a = ts.VariableStore()
    with ts.variable_scope("outer"), ts.name_scope("ns"):
        with a.as_default():
            assert ts.get_variable_scope().name == ""
            assert ts.get_name_scope() == ""
            v = ts.get_variable("v", [1])
        assert ts.get_variable_scope().name == "outer"
        assert ts.get_name_scope() == "outer/ns"
    assert ts.name_of(v) == "v"


def test_reset_default_store():
    v = ts.get_variable("v", [1])
    old = ts.get_default_store()
    new = ts.reset_default_store()
    assert new is not old and ts.get_default_store() is new
    assert len(new) == 0
    assert ts.get_variable("v", [1]) is not v


def test_reset_default_store_refused_inside_scopes():
    with ts.variable_scope("a"), pytest.raises(RuntimeError, match=r"inside variable_scope 'a'"):
        ts.reset_default_store()
    with ts.VariableStore().as_default(), pytest.raises(RuntimeError, match=r"as_default"):
        ts.reset_default_store()


def test_as_default_closed_out_of_order():
    from torchscope import _context as _state

    default = ts.get_default_store()
    store_a, store_b = ts.VariableStore(), ts.VariableStore()
    a, b = store_a.as_default(), store_b.as_default()
    a.__enter__()
    b.__enter__()
    try:
        with pytest.raises(RuntimeError, match=r"closed out of order"):
            a.__exit__(None, None, None)
        assert ts.get_default_store() is store_b  # the refused exit changed nothing
    finally:
        b.__exit__(None, None, None)
        assert ts.get_default_store() is store_a
        a.__exit__(None, None, None)  # in order now
    assert ts.get_default_store() is default
    assert not _state.is_open()


def test_as_default_object_is_entered_once_at_a_time():
    store = ts.VariableStore()
    block = store.as_default()
    with block:
        with pytest.raises(RuntimeError, match=r"already open; call store.as_default\(\) again"):
            block.__enter__()
        with store.as_default():  # nesting the same store is fine
            assert ts.get_default_store() is store
        assert ts.get_default_store() is store
    with block:  # and it can be entered again once closed
        assert ts.get_default_store() is store
    assert ts.get_default_store() is not store


# -- checkpoints ---------------------------------------------------------------------------------


def test_state_dict_keys_are_full_names():
    store = ts.VariableStore()
    with store.as_default():
        build()
    state = store.state_dict()
    assert list(state) == NAMES
    assert torch.equal(state["conv1/weights"], store["conv1/weights"].detach())


def test_load_state_dict_round_trip_into_a_second_store():
    first, second = ts.VariableStore(), ts.VariableStore()
    torch.manual_seed(1)
    with first.as_default():
        build()
    torch.manual_seed(2)
    with second.as_default():
        build()
    assert not torch.equal(first["dense/w"], second["dense/w"])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    result = second.load_state_dict(torch.load(buffer))
    assert not result.missing_keys and not result.unexpected_keys
    for key in NAMES:
        assert torch.equal(first[key], second[key])
    # In place: the objects second handed out are the ones that changed.
    with second.as_default(), ts.variable_scope("dense", reuse=True):
        assert torch.equal(ts.get_variable("w"), first["dense/w"])


def test_load_state_dict_is_strict_by_default():
    store = ts.VariableStore()
    with store.as_default():
        build()
    state = store.state_dict()
    state.pop("dense/w")
    state["dense/extra"] = torch.zeros(1)
    with pytest.raises(RuntimeError) as info:
        store.load_state_dict(state)
    assert '"dense/w"' in str(info.value)  # missing
    assert '"dense/extra"' in str(info.value)  # unexpected
    result = store.load_state_dict(state, strict=False)
    assert result.missing_keys == ["dense/w"]
    assert result.unexpected_keys == ["dense/extra"]
    assert list(store) == NAMES


def test_load_state_dict_shape_mismatch():
    store = ts.VariableStore()
    with store.as_default():
        ts.get_variable("w", [2])
    with pytest.raises(RuntimeError, match=r"size mismatch for w"):
        store.load_state_dict({"w": torch.zeros(3)})


# -- names ---------------------------------------------------------------------------------------


def test_name_of():
    with ts.variable_scope("a"):
        v = ts.get_variable("v", [1])
    assert ts.name_of(v) == "a/v"
    assert ts.get_default_store().name_of(v) == "a/v"
    with pytest.raises(KeyError, match=r"no torchscope store holds this tensor"):
        ts.name_of(torch.zeros(2))
    with pytest.raises(KeyError, match=r"this store holds no variable"):
        ts.VariableStore().name_of(v)
    with pytest.raises(KeyError):
        ts.name_of(nn.Parameter(torch.zeros(1)))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("a.b", r"variable name 'a\.b' is not valid.*'\.' is not allowed"),
        ("a b", "variable name 'a b' is not valid"),
        ("a:0", "variable name 'a:0' is not valid"),
        ("_a", "starts with a letter or digit"),
        ("-a", "starts with a letter or digit"),
        ("", "variable name is empty"),
        ("a/", "empty path component"),
        ("a//b", "empty path component"),
        ("é", "is not valid"),
    ],
)
def test_bad_variable_names_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        ts.get_variable(bad, [1])
    assert len(ts.get_default_store()) == 0


def test_allowed_characters():
    names = ["a-b", "A_b", "0x", "a>b", "a\\b", "a/b/c"]
    for n in names:
        ts.get_variable(n, [1])
    assert list(ts.get_default_store()) == names


def test_negative_shape_refused():
    with pytest.raises(
        ValueError, match=r"shape of variable 'v' has a negative dimension: \[3, -2\]"
    ):
        ts.get_variable("v", [3, -2])


@pytest.mark.parametrize(
    "key", ["training", "forward", "state_dict", "parameters", "to", "keys", "eval"]
)
def test_names_that_are_module_attributes(key):
    store = ts.VariableStore()
    with store.as_default():
        v = ts.get_variable(key, initializer=[1.0, 2.0])
    assert store[key] is v
    assert list(store) == [key]
    assert list(store.state_dict()) == [key]
    assert isinstance(store.training, bool)
    assert callable(store.forward) and callable(store.state_dict)
    store.eval()
    assert store.training is False
    store.train()
    assert store.training is True
    assert store[key] is v
    other = ts.VariableStore()
    with other.as_default():
        ts.get_variable(key, [2])
    other.load_state_dict(store.state_dict())
    assert other[key].detach().tolist() == [1.0, 2.0]
    with store.as_default(), ts.variable_scope(ts.get_variable_scope(), reuse=True):
        assert ts.get_variable(key, [2]) is v
    assert ts.name_of(v) == key


def test_training_variable_under_auto_reuse():
    with ts.variable_scope(ts.get_variable_scope(), reuse=ts.AUTO_REUSE):
        t = ts.get_variable("training", [], dtype=torch.bool, trainable=False)
        assert ts.get_variable("training") is t


# -- mutation refused ----------------------------------------------------------------------------


def test_mutation_methods_are_refused():
    store = ts.get_default_store()
    v = ts.get_variable("x", [1])
    p = nn.Parameter(torch.zeros(1))
    for call in (
        lambda: store.__setitem__("y", p),
        lambda: store.__delitem__("x"),
        lambda: store.pop("x"),
        lambda: store.popitem(),
        lambda: store.clear(),
        lambda: store.update({"y": p}),
        lambda: store.setdefault("y", p),
    ):
        with pytest.raises(TypeError, match=r"filled by ts.get_variable\(\) only"):
            call()
    with pytest.raises(TypeError, match=r"filled by"):
        store["y"] = p
    with pytest.raises(TypeError, match=r"filled by"):
        del store["x"]
    assert list(store) == ["x"] and store["x"] is v


# -- copies --------------------------------------------------------------------------------------


def _check_independent(original, clone):
    assert list(clone) == list(original)
    for key in original:
        assert clone[key] is not original[key]
        assert torch.equal(clone[key], original[key])
        assert ts.name_of(clone[key]) == key
    with torch.no_grad():
        clone["dense/w"].add_(1.0)
    assert not torch.equal(clone["dense/w"], original["dense/w"])
    with clone.as_default():
        with ts.variable_scope("dense", reuse=True):
            assert ts.get_variable("w", [4, 2]) is clone["dense/w"]
        ts.get_variable("new", [1])
    assert "new" in clone and "new" not in original
    assert len(clone.regularization_losses()) == 2  # dense/w and dense/step
    assert [ts.name_of(v) for v in clone.trainable_variables()] == [
        "conv1/weights",
        "conv1/biases",
        "dense/w",
        "new",
    ]


def test_deepcopy_is_independent_and_works():
    store = ts.VariableStore()
    with store.as_default():
        build()
    _check_independent(store, copy.deepcopy(store))


def test_torch_save_load_is_independent_and_works():
    store = ts.VariableStore()
    with store.as_default():
        with ts.variable_scope("conv1"):
            ts.get_variable("weights", [3, 3, 2, 4])
            ts.get_variable("biases", [4])
        with ts.variable_scope("dense", regularizer=_l2):
            ts.get_variable("w", [4, 2])
            ts.get_variable("step", [], dtype=torch.int64, trainable=False)
    buffer = io.BytesIO()
    torch.save(store, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    _check_independent(store, loaded)
    assert pickle.loads(pickle.dumps(store)) is not store


def test_collected_tensors_with_autograd_history_copy_and_pickle_detached():
    """A loss a forward put into a collection (ts.add_to_collection, an activity
    regularizer) does not stop a copy: it is copied detached, with its value."""
    store = ts.VariableStore()
    with store.as_default():
        w = ts.get_variable("w", initializer=[1.0, 2.0])
        loss = (w * 3).sum()
        ts.add_to_collection(ts.GraphKeys.LOSSES, loss)
        ts.add_to_collection(ts.GraphKeys.LOSSES, "a name")
    for clone in (copy.deepcopy(store), pickle.loads(pickle.dumps(store))):
        copied, text = clone.get_collection(ts.GraphKeys.LOSSES)
        assert torch.equal(copied, torch.tensor(9.0)) and copied.grad_fn is None
        assert text == "a name"
    assert store.get_collection(ts.GraphKeys.LOSSES)[0] is loss


def _l2(v):
    return (v**2).sum()


def test_copy_while_scopes_are_open_starts_clean():
    store = ts.VariableStore()
    with store.as_default(), ts.variable_scope("open"):
        ts.get_variable("v", [1])
        clone = copy.deepcopy(store)
    with clone.as_default():
        assert ts.get_variable_scope().name == ""


# -- failed calls change nothing -----------------------------------------------------------------


def _failing_init(shape, dtype=None, device=None):
    raise RuntimeError("initializer failed")


FAILING_CALLS = {
    "bad name": (lambda: ts.get_variable("a.b", [1]), ValueError, "not valid"),
    "empty name": (lambda: ts.get_variable("", [1]), ValueError, "empty"),
    "bad shape": (lambda: ts.get_variable("n", [1, -1]), ValueError, "negative"),
    "shape missing": (lambda: ts.get_variable("n"), ValueError, "fully defined"),
    "initializer raises": (
        lambda: ts.get_variable("n", [2], initializer=_failing_init),
        RuntimeError,
        "initializer failed",
    ),
    "initializer wrong shape": (
        lambda: ts.get_variable(
            "n", [2], initializer=lambda s, dtype=None, device=None: torch.zeros(5)
        ),
        ValueError,
        "returned shape",
    ),
    "value wrong shape": (
        lambda: ts.get_variable("n", [2], initializer=[1.0]),
        ValueError,
        "shape",
    ),
    "bad regularizer": (
        lambda: ts.get_variable("n", [2], regularizer=0.5),
        TypeError,
        "regularizer",
    ),
    "bad constraint": (lambda: ts.get_variable("n", [2], constraint="x"), TypeError, "constraint"),
    "bad trainable": (lambda: ts.get_variable("n", [2], trainable=1), TypeError, "trainable"),
    "bad dtype": (lambda: ts.get_variable("n", [2], dtype="nope"), TypeError, "dtype"),
    "bad device": (lambda: ts.get_variable("n", [2], device="nope"), ValueError, "device"),
    "exists": (lambda: ts.get_variable("dense/w", [4, 2]), ValueError, "already exists"),
}


def _auto_reuse_half():
    with ts.variable_scope("dense", reuse=ts.AUTO_REUSE, dtype=torch.float16):
        ts.get_variable("w")


def _reusing(call):
    def run():
        with ts.variable_scope("dense", reuse=True):
            call()

    return run


FAILING_CALLS.update(
    {
        "dtype mismatch on reuse": (
            _reusing(lambda: ts.get_variable("w", dtype=torch.float64)),
            ValueError,
            "dtype",
        ),
        "shape mismatch on reuse": (
            _reusing(lambda: ts.get_variable("w", [2, 4])),
            ValueError,
            "shape",
        ),
        "missing on reuse": (
            _reusing(lambda: ts.get_variable("zz", [1])),
            ValueError,
            "does not exist",
        ),
        "auto reuse dtype mismatch": (_auto_reuse_half, ValueError, "dtype"),
    }
)


@pytest.mark.parametrize("case", sorted(FAILING_CALLS))
def test_failed_call_leaves_the_store_unchanged(case):
    call, error, match = FAILING_CALLS[case]
    store = ts.VariableStore()
    with store.as_default():
        build()
        ts.add_to_collection("activations", torch.ones(1))
        before = snapshot(store)
        with ts.variable_scope("outer"):
            pass
        scope_before = ts.get_variable_scope()
        with pytest.raises(error, match=match):
            call()
        assert ts.get_variable_scope() is scope_before
        assert_same(snapshot(store), before)


def test_a_regularizer_that_cannot_run_fails_at_creation_naming_the_variable(ts_store):
    with pytest.raises(
        TypeError, match=r"regularizer .* of variable 'w' failed on the new variable"
    ):
        ts.get_variable("w", [2], regularizer=lambda v, extra: 0)
    assert "w" not in ts_store and ts.regularization_losses() == []
    ts.get_variable("ok", [2], regularizer=lambda v: v.sum())
    assert len(ts.regularization_losses()) == 1


def test_a_subclass_parameter_is_a_variable_with_the_stores_bookkeeping():
    class Scaled(ts.ScopedModule):
        def __init__(self):
            super().__init__()
            self.temp = nn.Parameter(torch.ones(1))
            self.frozen = nn.Parameter(torch.ones(1), requires_grad=False)

        def forward(self, x):
            return x * ts.get_variable("w", [1]) / self.temp

    module = Scaled()
    module(torch.ones(1))
    store = module.store
    assert list(store) == ["temp", "frozen", "w"]
    assert ts.name_of(module.temp) == "temp"
    assert [ts.name_of(v) for v in store.trainable_variables()] == ["temp", "w"]
    rows = {line.split()[0]: line.split() for line in ts.summary(store).splitlines()[1:-1]}
    assert rows["temp"][4] == "yes" and rows["frozen"][4] == "no"


def test_name_of_refuses_a_reloaded_copy():
    with ts.variable_scope("foo"):
        v = ts.get_variable("v", [2])
    buffer = io.BytesIO()
    torch.save(v, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with pytest.raises(KeyError, match=r"no torchscope store holds this tensor"):
        ts.name_of(loaded)
    with pytest.raises(KeyError, match=r"no torchscope store holds this tensor"):
        ts.name_of(copy.deepcopy(v))
    assert ts.name_of(v) == "foo/v"


def test_name_of_refuses_a_variable_of_a_dropped_store():
    import gc

    store = ts.VariableStore()
    with store.as_default():
        v = ts.get_variable("v", [1])
    assert ts.name_of(v) == "v"
    del store
    gc.collect()
    with pytest.raises(KeyError, match=r"no torchscope store holds this tensor"):
        ts.name_of(v)


def test_name_of_finds_variables_of_other_live_stores():
    store = ts.VariableStore()
    with store.as_default(), ts.variable_scope("s"):
        v = ts.get_variable("v", [1])
    assert ts.name_of(v) == "s/v"  # outside its store's as_default()
