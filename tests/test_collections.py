"""Collections and losses: global/trainable variables, named collections with
TensorFlow's re.match scope filter, and regularization losses computed from the
current values at every call."""

import copy
import gc
import threading

import pytest
import torch

import torchscope as ts


def make():
    with ts.variable_scope("foo"):
        a = ts.get_variable("a", [1])
        b = ts.get_variable("b", [1], trainable=False)
    with ts.variable_scope("foobar"):
        c = ts.get_variable("c", [1])
    with ts.variable_scope("bar"), ts.variable_scope("foo"):
        d = ts.get_variable("d", [1])
    return a, b, c, d


def test_global_and_trainable_in_creation_order():
    a, b, c, d = make()
    assert ts.global_variables() == [a, b, c, d]
    assert ts.trainable_variables() == [a, c, d]
    assert ts.get_collection(ts.GraphKeys.GLOBAL_VARIABLES) == [a, b, c, d]
    assert ts.get_collection(ts.GraphKeys.TRAINABLE_VARIABLES) == [a, c, d]


def test_scope_filter_is_re_match():
    a, b, c, d = make()
    # "foo" matches "foobar/c" too, as in TensorFlow; "foo/" is the scope alone.
    assert ts.global_variables("foo") == [a, b, c]
    assert ts.global_variables("foo/") == [a, b]
    assert ts.trainable_variables("foo") == [a, c]
    # re.match anchors at the start only: "bar/foo/d" does not match "foo".
    assert ts.global_variables("bar") == [d]
    assert ts.global_variables(".*foo/") == [a, b, d]
    assert ts.global_variables("nothing") == []
    assert ts.global_variables(r"foo(bar)?/[ac]") == [a, c]


def test_add_to_collection_and_get_collection():
    a, _, c, _ = make()
    ts.add_to_collection("activations", 1.0)
    ts.add_to_collection("activations", "two")
    ts.add_to_collection("weights", a)
    ts.add_to_collection("weights", c)
    assert ts.get_collection("activations") == [1.0, "two"]
    assert ts.get_collection("weights") == [a, c]
    assert ts.get_collection("weights", "foo/") == [a]
    assert ts.get_collection("weights", "foo") == [a, c]
    # Items without a name are left out when filtering by scope.
    assert ts.get_collection("activations", "foo") == []
    assert ts.get_collection("empty") == []


def test_collection_returns_a_copy():
    ts.add_to_collection("k", 1)
    got = ts.get_collection("k")
    got.append(2)
    assert ts.get_collection("k") == [1]


def test_collection_items_named_by_name_attribute():
    class Named:
        name = "foo/thing"

    item = Named()
    ts.add_to_collection("things", item)
    assert ts.get_collection("things", "foo/") == [item]
    assert ts.get_collection("things", "bar") == []


def test_add_to_global_variables_collection_extends_it():
    (a, b, c, d) = make()
    extra = torch.nn.Parameter(torch.zeros(1))
    ts.add_to_collection(ts.GraphKeys.GLOBAL_VARIABLES, extra)
    assert ts.global_variables() == [a, b, c, d, extra]


def test_collection_key_must_be_str():
    with pytest.raises(TypeError, match=r"collection key must be a str"):
        ts.add_to_collection(3, 1)


def test_collections_belong_to_the_store():
    ts.add_to_collection("k", 1)
    store = ts.VariableStore()
    with store.as_default():
        assert ts.get_collection("k") == []
        ts.add_to_collection("k", 2)
        v = ts.get_variable("v", [1])
        assert ts.global_variables() == [v]
    assert ts.get_collection("k") == [1]
    assert ts.global_variables() == []
    assert store.get_collection("k") == [2]
    assert store.global_variables() == [v]
    assert store.trainable_variables("v") == [v]


def l2(v):
    return 0.5 * (v**2).sum()


def test_regularization_losses_in_creation_order():
    with ts.variable_scope("dense", regularizer=l2):
        ts.get_variable("w", initializer=[1.0, 2.0])
        ts.get_variable("b", initializer=[3.0], regularizer=lambda v: v.abs().sum())
    with ts.variable_scope("plain"):
        ts.get_variable("u", initializer=[5.0])
    with ts.variable_scope("densely", regularizer=l2):
        ts.get_variable("z", initializer=[2.0])
    assert [x.item() for x in ts.regularization_losses()] == [2.5, 3.0, 2.0]
    assert [x.item() for x in ts.regularization_losses("dense/")] == [2.5, 3.0]
    assert [x.item() for x in ts.regularization_losses("dense")] == [2.5, 3.0, 2.0]
    assert ts.regularization_loss().item() == 7.5
    assert ts.regularization_loss("densely").item() == 2.0
    assert [x.item() for x in ts.get_collection(ts.GraphKeys.REGULARIZATION_LOSSES)] == [
        2.5,
        3.0,
        2.0,
    ]


def test_regularization_loss_without_regularizers_is_zero():
    ts.get_variable("w", [2])
    loss = ts.regularization_loss()
    assert loss.shape == () and loss.item() == 0.0


def test_regularizer_returning_none_is_skipped():
    ts.get_variable("w", [2], regularizer=lambda v: None)
    assert ts.regularization_losses() == []


def test_regularization_follows_current_values_after_optimizer_step():
    with ts.variable_scope("dense", regularizer=l2):
        w = ts.get_variable("w", initializer=[1.0, 2.0])
    before = ts.regularization_loss()
    assert before.item() == 2.5
    opt = torch.optim.SGD(ts.trainable_variables(), lr=0.5)
    opt.zero_grad()
    before.backward()
    assert w.grad.tolist() == [1.0, 2.0]
    opt.step()
    assert w.detach().tolist() == [0.5, 1.0]
    after = ts.regularization_loss()
    assert after.item() == pytest.approx(0.625)
    assert after.requires_grad


def test_regularization_loss_trains_to_zero():
    with ts.variable_scope("d", regularizer=l2):
        ts.get_variable("w", [8, 8])
    opt = torch.optim.SGD(ts.trainable_variables(), lr=0.5)
    for _ in range(30):
        opt.zero_grad()
        loss = ts.regularization_loss()
        loss.backward()
        opt.step()
    assert ts.regularization_loss().item() < 1e-6


def test_scope_collections():
    a, b, c, d = make()
    with ts.variable_scope("foo") as foo:
        pass
    # A VariableScope filters by its name followed by "/".
    assert foo.global_variables() == [a, b]
    assert foo.trainable_variables() == [a]
    assert foo.get_collection("variables") == [a, b]
    with ts.variable_scope("bar") as bar:
        assert bar.global_variables() == [d]
    assert ts.get_variable_scope().global_variables() == [a, b, c, d]


def names(items):
    return [ts.name_of(x) if isinstance(x, torch.nn.Parameter) else x for x in items]


def test_added_items_interleave_with_variables_in_creation_order():
    ts.add_to_collection(ts.GraphKeys.GLOBAL_VARIABLES, "early")
    ts.add_to_collection(ts.GraphKeys.TRAINABLE_VARIABLES, "early")
    ts.add_to_collection(ts.GraphKeys.REGULARIZATION_LOSSES, torch.tensor(10.0))
    with ts.variable_scope("foo", regularizer=lambda v: v.sum()):
        ts.get_variable("a", initializer=[1.0])
    ts.add_to_collection(ts.GraphKeys.GLOBAL_VARIABLES, "middle")
    ts.add_to_collection(ts.GraphKeys.REGULARIZATION_LOSSES, torch.tensor(20.0))
    ts.get_variable("b", initializer=[2.0], regularizer=lambda v: v.sum(), trainable=False)
    ts.add_to_collection(ts.GraphKeys.TRAINABLE_VARIABLES, "late")
    assert names(ts.global_variables()) == ["early", "foo/a", "middle", "b"]
    assert names(ts.trainable_variables()) == ["early", "foo/a", "late"]
    assert [x.item() for x in ts.regularization_losses()] == [10.0, 1.0, 20.0, 2.0]
    assert ts.regularization_loss().item() == 33.0


def test_interleaving_after_a_failed_module_build():
    ts.add_to_collection(ts.GraphKeys.GLOBAL_VARIABLES, "kept")

    def fails(x):
        ts.add_to_collection(ts.GraphKeys.GLOBAL_VARIABLES, "dropped")
        ts.add_to_collection("made_by_the_call", "dropped")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        ts.ScopedModule(fails)(torch.ones(1))
    v = ts.get_variable("v", [1])
    ts.add_to_collection(ts.GraphKeys.GLOBAL_VARIABLES, "after")
    ts.add_to_collection("made_by_the_call", "again")
    assert names(ts.global_variables()) == ["kept", "v", "after"]
    assert ts.get_collection("made_by_the_call") == ["again"]
    assert ts.global_variables()[1] is v


def test_regularization_loss_is_a_tensor_when_regularizers_return_numbers():
    ts.get_variable("r", [1], regularizer=lambda v: 0.5)
    loss = ts.regularization_loss()
    assert isinstance(loss, torch.Tensor)
    assert loss.dtype == torch.get_default_dtype() and loss.item() == 0.5
    w = ts.get_variable("w", initializer=[2.0], regularizer=lambda v: v.sum())
    loss = ts.regularization_loss()
    assert isinstance(loss, torch.Tensor) and loss.item() == 2.5
    loss.backward()
    assert w.grad.tolist() == [1.0]


def test_regularization_loss_of_numbers_follows_the_default_dtype():
    ts.get_variable("r", [1], regularizer=lambda v: 1)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        loss = ts.regularization_loss()
    finally:
        torch.set_default_dtype(previous)
    assert loss.dtype == torch.float64 and loss.item() == 1.0


# TensorFlow 1.15's ops.GraphKeys values.
TF_GRAPH_KEYS = {
    "GLOBAL_VARIABLES": "variables",
    "VARIABLES": "variables",
    "LOCAL_VARIABLES": "local_variables",
    "METRIC_VARIABLES": "metric_variables",
    "MODEL_VARIABLES": "model_variables",
    "TRAINABLE_VARIABLES": "trainable_variables",
    "SUMMARIES": "summaries",
    "QUEUE_RUNNERS": "queue_runners",
    "TABLE_INITIALIZERS": "table_initializer",
    "ASSET_FILEPATHS": "asset_filepaths",
    "MOVING_AVERAGE_VARIABLES": "moving_average_variables",
    "REGULARIZATION_LOSSES": "regularization_losses",
    "CONCATENATED_VARIABLES": "concatenated_variables",
    "SAVERS": "savers",
    "WEIGHTS": "weights",
    "BIASES": "biases",
    "ACTIVATIONS": "activations",
    "UPDATE_OPS": "update_ops",
    "LOSSES": "losses",
    "SAVEABLE_OBJECTS": "saveable_objects",
    "RESOURCES": "resources",
    "LOCAL_RESOURCES": "local_resources",
    "TRAINABLE_RESOURCE_VARIABLES": "trainable_resource_variables",
    "INIT_OP": "init_op",
    "LOCAL_INIT_OP": "local_init_op",
    "READY_OP": "ready_op",
    "READY_FOR_LOCAL_INIT_OP": "ready_for_local_init_op",
    "SUMMARY_OP": "summary_op",
    "GLOBAL_STEP": "global_step",
    "EVAL_STEP": "eval_step",
    "TRAIN_OP": "train_op",
    "COND_CONTEXT": "cond_context",
    "WHILE_CONTEXT": "while_context",
}


@pytest.mark.parametrize(("attribute", "value"), sorted(TF_GRAPH_KEYS.items()))
def test_graph_keys_have_tensorflows_values(attribute, value):
    assert getattr(ts.GraphKeys, attribute) == value


@pytest.mark.parametrize(
    "key",
    [
        ts.GraphKeys.UPDATE_OPS,
        ts.GraphKeys.LOSSES,
        ts.GraphKeys.LOCAL_VARIABLES,
        ts.GraphKeys.MODEL_VARIABLES,
        ts.GraphKeys.MOVING_AVERAGE_VARIABLES,
    ],
)
def test_keys_the_store_does_not_fill_are_plain_collections(key):
    w = ts.get_variable("w", [1])
    assert ts.get_collection(key) == []
    ts.add_to_collection(key, w)
    ts.add_to_collection(key, "op")
    assert ts.get_collection(key) == [w, "op"]


# -- the modules built in a store: TensorFlow's "build, then ask the graph" ----------------------


def _dense(x):
    with ts.variable_scope("dense"):
        w = ts.get_variable("w", [3, 2])
        step = ts.get_variable("step", [], dtype=torch.int64, trainable=False)
        ts.add_to_collection("activations", x)
    return x @ w + step


def test_trainable_variables_after_building_a_module_go_to_an_optimizer(ts_store):
    model = ts.ScopedModule(_dense, name="model")
    assert ts.trainable_variables() == []  # nothing is made before the first call
    model(torch.ones(1, 3))
    opt = torch.optim.Adam(ts.trainable_variables(), lr=0.1)
    assert opt.param_groups[0]["params"] == [model.store["model/dense/w"]]
    assert [v.name for v in ts.global_variables()] == ["model/dense/w:0", "model/dense/step:0"]
    assert ts.global_variables("model/dense/s") == [model.store["model/dense/step"]]
    assert ts.global_variables("other") == []
    assert len(ts.get_collection("activations")) == 1
    assert len(ts_store) == 0  # the store's own mapping is its own variables only
    model(torch.ones(1, 3))  # called again: listed once, as built
    assert len(ts.global_variables()) == 2


def test_modules_are_listed_in_the_order_they_were_built_among_the_stores_own(ts_store):
    a = ts.ScopedModule(_dense, name="a")
    b = ts.ScopedModule(_dense, name="b")
    b(torch.ones(1, 3))
    ts.get_variable("own", [1])
    a(torch.ones(1, 3))
    assert [v.name for v in ts.trainable_variables()] == ["b/dense/w:0", "own:0", "a/dense/w:0"]


def test_a_module_that_is_gone_leaves_the_lists(ts_store):
    model = ts.ScopedModule(_dense, name="model")
    model(torch.ones(1, 3))
    assert len(ts.trainable_variables()) == 1
    del model
    gc.collect()
    assert ts.trainable_variables() == []


def test_a_module_is_listed_by_the_store_it_was_built_in(ts_store):
    other = ts.VariableStore()
    model = ts.ScopedModule(_dense, name="model")
    with other.as_default():
        model(torch.ones(1, 3))
        assert [v.name for v in ts.trainable_variables()] == ["model/dense/w:0"]
    assert ts.trainable_variables() == []
    assert other.trainable_variables() == [model.store["model/dense/w"]]


def test_a_module_built_inside_another_is_listed_through_it(ts_store):
    inner = ts.ScopedModule(_dense, name="inner")

    def outer_fn(x):
        return inner(x) * ts.get_variable("scale", [1])

    outer = ts.ScopedModule(outer_fn, name="outer")
    outer(torch.ones(1, 3))
    assert [v.name for v in ts.trainable_variables()] == ["inner/dense/w:0", "outer/scale:0"]


def test_a_failed_first_call_lists_nothing(ts_store):
    inner = ts.ScopedModule(_dense, name="inner")

    def outer_fn(x):
        inner(x)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        ts.ScopedModule(outer_fn, name="outer")(torch.ones(1, 3))
    assert ts.trainable_variables() == []


def test_modules_built_on_threads_are_all_listed(ts_store):
    models = [ts.ScopedModule(_dense, name=f"m{i}") for i in range(4)]
    threads = [threading.Thread(target=m, args=(torch.ones(1, 3),)) for m in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(v.name for v in ts.trainable_variables()) == [f"m{i}/dense/w:0" for i in range(4)]


def test_a_template_in_a_module_and_copies(ts_store):
    template = ts.make_template("t", lambda x: x * ts.get_variable("g", [1]))
    model = ts.ScopedModule(lambda x: template(x) + template(x), name="m")
    model(torch.ones(1))
    assert [v.name for v in ts.trainable_variables()] == ["m/t/g:0"]
    copied = copy.deepcopy(ts_store)  # the weak references are not carried over
    assert copied.trainable_variables() == []
    assert copy.deepcopy(model).store.trainable_variables()[0].name == "m/t/g:0"
