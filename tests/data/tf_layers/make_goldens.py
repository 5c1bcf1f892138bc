"""Writes the ``tf.compat.v1.layers`` goldens in this folder, for tests that run without TensorFlow.

Run with TensorFlow 2.21 (CPU) and tf-keras in a scratch venv (neither is a dependency of the
project; ``tf.compat.v1.layers`` needs tf-keras, hence ``TF_USE_LEGACY_KERAS=1`` below):

    /tmp/tfvenv/bin/python tests/data/tf_layers/make_goldens.py [OUTDIR]

Every case runs in its own graph in TF1 graph mode (``tf.compat.v1``, eager off). Its input
``x`` is fed through a placeholder; after the variables are initialised, each one is set to a
fixed random value (``var/<name>``, ``<name>`` the variable's name inside the layer: ``kernel``,
``bias``, ``gamma``, ...), and the loss ``sum(y * up)`` with a fixed random ``up`` is
differentiated with ``tf.gradients``. ``<layer>.npz`` holds, per case ``<case>/`` (the
convolutions and pools: ``<case>/<data_format>/``): ``x``, ``up``, ``y``, ``grad/x``,
``var/<name>``, and ``grad/<name>`` for each trainable variable. Every array is float32,
little-endian.

Batch normalization in training mode runs two steps (``x`` then ``x2``, each with the layer's
``UPDATE_OPS`` in the same ``session.run``) and adds ``y2`` and ``moving_mean/<t>``,
``moving_variance/<t>`` after step ``t`` (1 and 2); gradients are those of step 1.

The ``channels_first`` cases ran in TensorFlow itself: TensorFlow 2.21's CPU build has NCHW
kernels for every op used here (``conv2d``, ``conv2d_transpose``, the pools and fused batch
norm), with their gradients. Should a future CPU build lack one, the case is computed in
channels_last on the transposed input, its outputs transposed back, and ``derived`` lists
it in ``configs.json``.

``configs.json`` gives each case's layer keyword arguments (TensorFlow's spelling, which is
also ``ts.layers``'s) and input shapes; ``names.json`` the variable names, shapes and
trainable flags, and the collections, of the program in ``names_steps`` (how TF1 layers
pick their names: per variable scope, with reuse, ``AUTO_REUSE`` and templates); and
``regularization.npz`` with ``configs.json``'s ``regularization`` the
``REGULARIZATION_LOSSES`` of a scope regularizer, a layer regularizer and an activity
regularizer, in TensorFlow's order.
"""

import json
import os
import sys
import warnings

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.compat.v1.layers needs tf-keras under Keras 3
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_eager_execution()
L = tf1.layers

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))

CONV_CASES = {
    "k3_s1_valid": dict(filters=4, kernel_size=3, strides=1, padding="valid"),
    "k3_s2_same": dict(filters=4, kernel_size=3, strides=2, padding="same"),
    "k2x3_s2x1_same_relu": dict(
        filters=5, kernel_size=(2, 3), strides=(2, 1), padding="SAME", activation="relu"
    ),
    "k4_s2_same": dict(filters=3, kernel_size=4, strides=2, padding="same"),
    "k3_d2_same": dict(filters=4, kernel_size=3, strides=1, padding="same", dilation_rate=2),
    "k3_s2_valid_nobias": dict(filters=2, kernel_size=3, strides=2, padding="valid", use_bias=False),
}
TRANSPOSE_CASES = {
    "k3_s1_valid": dict(filters=4, kernel_size=3, strides=1, padding="valid"),
    "k3_s2_same": dict(filters=4, kernel_size=3, strides=2, padding="same"),
    "k3_s2_valid": dict(filters=3, kernel_size=3, strides=2, padding="valid"),
    "k2x3_s2x1_valid_relu": dict(
        filters=5, kernel_size=(2, 3), strides=(2, 1), padding="valid", activation="relu"
    ),
    "k4_s2_same": dict(filters=3, kernel_size=4, strides=2, padding="SAME"),
    "k1_s3_same_nobias": dict(filters=2, kernel_size=1, strides=3, padding="same", use_bias=False),
}
POOL_CASES = {
    "p2_s2_valid": dict(pool_size=2, strides=2, padding="valid"),
    "p3_s2_same": dict(pool_size=3, strides=2, padding="same"),
    "p3x2_s1_same": dict(pool_size=(3, 2), strides=1, padding="same"),
    "p2_s1x2_valid": dict(pool_size=2, strides=(1, 2), padding="valid"),
    "p4_s3_same": dict(pool_size=4, strides=3, padding="SAME"),
}
DENSE_CASES = {
    "2d": (dict(units=3), [5, 7]),
    "2d_relu": (dict(units=4, activation="relu"), [5, 7]),
    "3d": (dict(units=3), [2, 3, 7]),
    "4d_nobias": (dict(units=2, use_bias=False), [2, 2, 3, 6]),
}
BN_CASES = {
    # name: (kwargs, input shape, training)
    "nhwc_train": (dict(momentum=0.9), [4, 5, 3, 3], True),
    "nchw_train": (dict(axis=1, momentum=0.9), [4, 3, 5, 3], True),
    "nhwc_unfused_train": (dict(momentum=0.9, fused=False), [4, 5, 3, 3], True),
    "2d_train": (dict(momentum=0.8, epsilon=0.01), [6, 5], True),
    "axis2_train": (dict(axis=2, momentum=0.9), [2, 3, 4, 5], True),
    "plain_train": (dict(momentum=0.9, center=False, scale=False), [3, 4, 2, 3], True),
    "n1_train": (dict(momentum=0.5), [1, 1, 1, 3], True),
    "nhwc_infer": (dict(), [4, 5, 3, 3], False),
    "nchw_infer": (dict(axis=1, epsilon=0.1), [4, 3, 5, 3], False),
    "2d_infer": (dict(), [6, 5], False),
    "axis2_infer": (dict(axis=2), [2, 3, 4, 5], False),
}

ACTIVATIONS = {"relu": tf.nn.relu}


def _kwargs(kwargs):
    """The keyword arguments with TensorFlow objects for the names in the JSON."""
    out = dict(kwargs)
    if "activation" in out:
        out["activation"] = ACTIVATIONS[out["activation"]]
    return out


def _short(variable):
    return variable.op.name.rsplit("/", 1)[1]


def _value_for(name, shape, rng):
    if name == "gamma":
        return (1.0 + 0.3 * rng.randn(*shape)).astype(np.float32)
    if name == "moving_variance":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if name in ("beta", "moving_mean", "bias"):
        return (0.2 * rng.randn(*shape)).astype(np.float32)
    return (0.5 * rng.randn(*shape)).astype(np.float32)


def run_case(build, shape, seed, steps=1):
    """Runs ``build(x)`` on random inputs; returns the arrays described in the module doc."""
    rng = np.random.RandomState(seed)
    x_value = rng.randn(*shape).astype(np.float32)
    x2_value = (1.5 * rng.randn(*shape) + 0.5).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, shape)
        y = build(x)
        up_value = rng.randn(*y.shape.as_list()).astype(np.float32)
        loss = tf.reduce_sum(y * tf.constant(up_value))
        trainable = tf1.trainable_variables()
        grads = tf.gradients(loss, [x, *trainable])
        updates = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out = {"x": x_value, "up": up_value}
            for v in tf1.global_variables():
                value = _value_for(_short(v), v.shape.as_list(), rng)
                v.load(value, sess)
                out["var/" + _short(v)] = value
            y_value, grad_values, _ = sess.run([y, grads, updates], {x: x_value})
            out["y"] = y_value
            out["grad/x"] = grad_values[0]
            for v, value in zip(trainable, grad_values[1:]):
                out["grad/" + _short(v)] = value
            moving = [v for v in tf1.global_variables() if _short(v).startswith("moving_")]
            if steps == 2:
                for v in moving:
                    out[f"{_short(v)}/1"] = sess.run(v)
                out["x2"] = x2_value
                out["y2"], _ = sess.run([y, updates], {x: x2_value})
                for v in moving:
                    out[f"{_short(v)}/2"] = sess.run(v)
    return out


def run_layout_case(layer, kwargs, shape_nhwc, seed, derived, key):
    """A channels_last case and its channels_first twin (TensorFlow's own NCHW kernels)."""
    results = {}
    nhwc = run_case(lambda x: layer(x, **_kwargs(kwargs)), shape_nhwc, seed)
    results["channels_last"] = nhwc
    n, h, w, c = shape_nhwc
    try:
        nchw = run_case(
            lambda x: layer(x, data_format="channels_first", **_kwargs(kwargs)), [n, c, h, w], seed
        )
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        # No NCHW kernel: the same numbers in NHWC, transposed.
        derived.append(key)
        nchw = {}
        for name, value in nhwc.items():
            if name in ("x", "up", "y", "grad/x"):
                value = np.ascontiguousarray(value.transpose(0, 3, 1, 2))
            nchw[name] = value
    results["channels_first"] = nchw
    return results


def save(name, cases):
    arrays = {
        f"{case}/{key}": np.ascontiguousarray(value, dtype=np.float32)
        for case, values in cases.items()
        for key, value in values.items()
    }
    np.savez(os.path.join(OUT, name + ".npz"), **arrays)


def net(x, images):
    """A small model of unnamed layers (and one named), built in several contexts below."""
    h = L.dense(x, 5, activation=tf.nn.relu)
    h = L.dense(h, 3)
    c = L.conv2d(images, 4, 3, padding="same")
    c = L.batch_normalization(c, training=True)
    c = L.max_pooling2d(c, 2, 2)
    c = L.conv2d_transpose(c, 2, 3, strides=2, name="up")
    c = L.dropout(c, 0.5, training=True)
    return h, L.flatten(c)


def names_steps(x, images):
    """The naming program, step by step: (label, function). A step may raise (TensorFlow's
    ValueError is recorded); the next step runs anyway."""

    def unnamed():
        L.dense(x, 3)
        L.dense(x, 3)  # dense_1

    def pool_named_dense():
        L.max_pooling2d(images, 2, 2, name="dense")  # opens scope dense_2, makes nothing
        L.dense(x, 3)  # dense_3

    def named():
        L.dense(x, 3, name="fc")

    def named_again():
        L.dense(x, 3, name="fc")  # a name is not made unique: fc/kernel exists

    def named_reuse():
        L.dense(x, 3, name="fc", reuse=True)

    def unnamed_reuse():
        L.dense(x, 3, reuse=True)  # scope "dense", not made unique: shares dense/

    def unnamed_reuse_missing():
        L.conv2d(images, 4, 3, reuse=True)  # conv2d/kernel does not exist

    def all_layers():
        L.conv2d(images, 4, 3)
        L.conv2d_transpose(images, 2, 3, strides=2)
        L.batch_normalization(images, training=True)
        L.batch_normalization(x)
        L.dropout(x, 0.5, training=True)
        L.flatten(images)
        L.average_pooling2d(images, 2, 2)
        L.max_pooling2d(images, 2, 2)
        L.conv2d(images, 2, 1, use_bias=False)  # conv2d_1, no bias
        L.batch_normalization(images, center=False, scale=False)  # moving statistics only

    def scope_reuse():
        with tf1.variable_scope("m"):
            net(x, images)
        with tf1.variable_scope("m", reuse=True):
            net(x, images)  # the counters restart in a re-entered scope: shares m/

    def scope_twice():
        with tf1.variable_scope("m"):
            net(x, images)  # without reuse: m/dense/kernel exists

    def auto_reuse():
        for _ in range(2):
            with tf1.variable_scope("a", reuse=tf1.AUTO_REUSE):
                L.dense(x, 3)
                L.dense(x, 3)
        with tf1.variable_scope("a", reuse=tf1.AUTO_REUSE):
            L.dense(x, 3)
            L.dense(x, 3)
            L.dense(x, 3)  # a/dense_2: new

    def layer_auto_reuse():
        with tf1.variable_scope("n"):
            L.dense(x, 3, reuse=tf1.AUTO_REUSE)  # scope "dense", not made unique
            L.dense(x, 3, reuse=tf1.AUTO_REUSE)  # shares it
            L.dense(x, 3)  # dense_1: "dense" was opened in this entry

    def explicit_reuse_in_auto():
        with tf1.variable_scope("n2", reuse=tf1.AUTO_REUSE):
            L.dense(x, 3, reuse=True)  # reuse=True wins over the scope's AUTO_REUSE

    def template():
        t = tf1.make_template("tmpl", net)
        t(x, images)
        t(x, images)  # reuses
        t2 = tf1.make_template("tmpl", net)
        t2(x, images)  # tmpl_1
        t2(x, images)

    def default_name_scope():
        for _ in range(2):
            with tf1.variable_scope(None, default_name="block"):
                L.dense(x, 3)
                L.dense(x, 3)

    def reenter_no_reuse():
        with tf1.variable_scope("outer"):
            with tf1.variable_scope("inner"):
                L.dense(x, 3)
            with tf1.variable_scope("inner"):
                L.dense(x, 3)  # counters restart: dense again, which exists

    def nested_named():
        with tf1.variable_scope("enc"):
            L.dense(x, 3, name="fc")
            L.dense(x, 3, name="fc2")
        with tf1.variable_scope("enc", reuse=True):
            L.dense(x, 3, name="fc")

    def reuse_scope_unnamed():
        with tf1.variable_scope("r"):
            L.dense(x, 3)
            L.dense(x, 3)
        with tf1.variable_scope("r") as scope:
            scope.reuse_variables()
            L.dense(x, 3)
            L.dense(x, 3)

    def module():
        with tf1.variable_scope("module"):
            net(x, images)  # what ScopedModule(net, name="module") makes, once

    return [
        (f.__name__, f)
        for f in (
            unnamed,
            pool_named_dense,
            named,
            named_again,
            named_reuse,
            unnamed_reuse,
            unnamed_reuse_missing,
            all_layers,
            scope_reuse,
            scope_twice,
            auto_reuse,
            layer_auto_reuse,
            explicit_reuse_in_auto,
            template,
            default_name_scope,
            reenter_no_reuse,
            nested_named,
            reuse_scope_unnamed,
            module,
        )
    ]


def names_golden():
    """Every variable's name, shape, trainable flag and the step that made it, in creation
    order; each step's error (None if it ran); the collections at the end."""
    g = tf.Graph()
    with g.as_default():
        x = tf.zeros([2, 4])
        images = tf.zeros([2, 6, 6, 3])
        made = {}
        steps = []
        for label, step in names_steps(x, images):
            try:
                step()
                error = None
            except ValueError as e:
                error = str(e).split("\n")[0]
            steps.append([label, error])
            for v in tf1.global_variables():
                made.setdefault(v.op.name, label)
        trainable = {v.op.name for v in tf1.trainable_variables()}
        variables = [
            [v.op.name, v.shape.as_list(), v.op.name in trainable, made[v.op.name]]
            for v in tf1.global_variables()
        ]
        collections = {
            key: [getattr(item, "name", str(item)) for item in g.get_collection(key)]
            for key in sorted(g.get_all_collection_keys())
        }
    return {"variables": variables, "steps": steps, "collections": collections}


def regularization():
    """REGULARIZATION_LOSSES of a dense layer under a scope regularizer, with its own kernel
    regularizer and an activity regularizer (which TensorFlow divides by the batch size)."""
    rng = np.random.RandomState(11)
    x_value = rng.randn(5, 4).astype(np.float32)
    kernel = (0.5 * rng.randn(4, 3)).astype(np.float32)
    bias = (0.2 * rng.randn(3)).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        x = tf.constant(x_value)
        with tf1.variable_scope("s", regularizer=lambda w: 0.5 * tf.reduce_sum(w * w)):
            L.dense(
                x,
                3,
                kernel_initializer=tf1.constant_initializer(kernel),
                bias_initializer=tf1.constant_initializer(bias),
                kernel_regularizer=lambda w: 0.1 * tf.reduce_sum(tf.abs(w)),
                activity_regularizer=lambda y: tf.reduce_sum(y * y),
            )
        losses = tf1.get_collection(tf1.GraphKeys.REGULARIZATION_LOSSES)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            values = sess.run(losses)
    arrays = {"x": x_value, "var/kernel": kernel, "var/bias": bias, "losses": np.array(values)}
    return arrays, [loss.name for loss in losses]


def main():
    configs = {"derived": []}
    derived = configs["derived"]

    cases = {}
    for i, (case, (kwargs, shape)) in enumerate(DENSE_CASES.items()):
        cases[case] = run_case(lambda x, kw=kwargs: L.dense(x, **_kwargs(kw)), shape, 100 + i)
    save("dense", cases)
    configs["dense"] = {case: dict(kwargs=kw, shape=shape) for case, (kw, shape) in DENSE_CASES.items()}

    for layer_name, layer, table, shape in (
        ("conv2d", L.conv2d, CONV_CASES, [1, 7, 9, 3]),
        ("conv2d_transpose", L.conv2d_transpose, TRANSPOSE_CASES, [1, 5, 7, 3]),
        ("max_pooling2d", L.max_pooling2d, POOL_CASES, [1, 7, 9, 3]),
        ("average_pooling2d", L.average_pooling2d, POOL_CASES, [1, 7, 9, 3]),
    ):
        cases = {}
        for i, (case, kwargs) in enumerate(table.items()):
            both = run_layout_case(layer, kwargs, shape, 200 + i, derived, f"{layer_name}/{case}")
            for fmt, values in both.items():
                cases[f"{case}/{fmt}"] = values
        save(layer_name, cases)
        configs[layer_name] = {"shape_nhwc": shape, "cases": table}

    cases = {}
    for i, (case, (kwargs, shape, training)) in enumerate(BN_CASES.items()):
        cases[case] = run_case(
            lambda x, kw=kwargs, t=training: L.batch_normalization(x, training=t, **kw),
            shape,
            300 + i,
            steps=2 if training else 1,
        )
    save("batch_normalization", cases)
    configs["batch_normalization"] = {
        case: dict(kwargs=kw, shape=shape, training=t) for case, (kw, shape, t) in BN_CASES.items()
    }

    rng = np.random.RandomState(400)
    flat = {}
    for case, shape, fmt in (
        ("4d_last", [2, 3, 4, 5], "channels_last"),
        ("4d_first", [2, 3, 4, 5], "channels_first"),
        ("3d_first", [2, 3, 4], "channels_first"),
        ("1d", [3], "channels_last"),
    ):
        x_value = rng.randn(*shape).astype(np.float32)
        g = tf.Graph()
        with g.as_default(), tf1.Session() as sess:
            y = sess.run(L.flatten(tf.constant(x_value), data_format=fmt))
        flat[case] = {"x": x_value, "y": y}
    save("flatten", flat)
    configs["flatten"] = {"4d_last": "channels_last", "4d_first": "channels_first",
                          "3d_first": "channels_first", "1d": "channels_last"}

    arrays, loss_names = regularization()
    np.savez(os.path.join(OUT, "regularization.npz"), **arrays)
    configs["regularization"] = loss_names

    with open(os.path.join(OUT, "names.json"), "w") as f:
        json.dump(names_golden(), f, indent=1)
        f.write("\n")
    configs["tensorflow"] = tf.__version__
    with open(os.path.join(OUT, "configs.json"), "w") as f:
        json.dump(configs, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
