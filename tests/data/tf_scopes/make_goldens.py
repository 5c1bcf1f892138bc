"""Writes ``default_names.json``: how TensorFlow names ``default_name`` scopes and templates.

Run with TensorFlow 2.21 (CPU) in a scratch venv (TensorFlow is not a dependency of the
project):

    /tmp/tfvenv/bin/python tests/data/tf_scopes/make_goldens.py [OUTDIR]

Each case is a small program, written as data so that ``tests/test_scope_names.py`` runs the
same program with torchscope, and its answer: the names, in order, of every variable scope
the program entered and every variable it made. The program runs in its own graph in TF1
graph mode (``tf.compat.v1``, eager off). A step is a dict:

- ``{"scope": name, "body": [...]}``: ``variable_scope(name)``; ``"as"`` keeps the scope
  under a label; ``"reuse"`` (``true`` or ``"auto"``) and ``"aux"`` (``auxiliary_name_scope``)
  are passed on;
- ``{"default": name, "body": [...]}``: ``variable_scope(None, default_name=name)``;
- ``{"reenter": label, "body": [...]}``: ``variable_scope(captured)``;
- ``{"var": name}``: ``get_variable(name, [1])``;
- ``{"template": label, "name": name}``: ``make_template(name, fn)`` (``"now"``:
  ``create_scope_now_``; ``"unique"``: ``unique_name_``), where ``fn`` makes ``v`` and
  opens ``variable_scope(None, default_name="layer")`` with ``w`` in it;
  ``{"call": label}`` calls it.
"""

import json
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_eager_execution()

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))


def S(name, *body, **kw):
    return {"scope": name, "body": list(body), **kw}


def D(name, *body, **kw):
    return {"default": name, "body": list(body), **kw}


def R(label, *body):
    return {"reenter": label, "body": list(body)}


def V(name="v"):
    return {"var": name}


CASES = {
    # a string scope "enc/layer" counts for default_name "layer" inside "enc"
    "multi_component_name_at_root": [S("enc/layer"), S("enc", D("layer", V()))],
    "multi_component_name_auto_reuse": [
        S("enc/layer", V(), reuse="auto"),
        S("enc", D("layer", V()), reuse="auto"),
    ],
    # closing "enc" forgets what was opened below it, wherever it was opened
    "closing_a_parent_forgets": [S("enc/layer"), S("enc"), S("enc", D("layer"))],
    "closing_a_grandparent_forgets": [S("n/x/y"), S("n"), S("n/x", D("y"))],
    "closing_a_sibling_keeps": [S("enc/layer"), S("dec"), S("enc", D("layer"))],
    "nested_defaults": [
        S("enc", D("layer", V()), D("layer", V()), S("layer_2"), D("layer"), D("layer")),
        S("enc", D("layer")),
    ],
    "root_defaults_count_for_the_graph": [D("foo"), D("foo"), S("foo_2"), D("foo")],
    "explicit_names_and_defaults": [S("a", S("layer_1"), D("layer"), D("layer"), D("layer"))],
    "case_is_kept": [S("enc/Layer"), S("enc", D("layer"), D("Layer"))],
    "deep_string_then_default_inside_parent": [
        S("a", S("b/c")),
        S("a", S("b", D("c"))),
        S("a/b", D("c")),
    ],
    "string_inside_opened_parent": [S("a", S("b/c"), S("b", D("c"), D("c")))],
    # a captured scope re-entered while it is open sees what was opened in it; on exit
    # TensorFlow puts back the counts it found on entry
    "reenter_while_open": [
        S("enc", D("layer"), R("enc", D("layer"), D("layer")), D("layer"), **{"as": "enc"})
    ],
    "reenter_after_close": [S("enc", D("layer"), **{"as": "enc"}), R("enc", D("layer"))],
    "reenter_twice_same_names": [
        S("enc", **{"as": "enc"}),
        R("enc", D("layer", V())),
        R("enc", D("layer", V("u"))),
    ],
    "reenter_inside_other_scope": [
        S("b", **{"as": "b"}),
        S("a", D("x"), R("b", D("x"), D("x")), D("x")),
        S("b", D("x")),
    ],
    "reenter_forgets_what_it_closed": [
        S("enc/layer", **{"as": "el"}),
        S("root", **{"as": "r"}),
        S("enc", R("el", S("deeper")), D("layer")),
    ],
    "reenter_counts_its_own_name": [
        S("a/b", **{"as": "ab"}),
        S("a", R("ab"), D("b")),
        S("x", R("ab"), S("a", D("b"))),
    ],
    "no_auxiliary_name_scope_counts_too": [
        S("enc", S("layer", aux=False), D("layer"), D("layer", aux=False), D("layer"))
    ],
    "reuse_scopes_count_too": [
        S("enc", S("layer", V()), **{"as": "e"}),
        S("enc", S("layer", V(), reuse=True), D("layer"), reuse=True),
    ],
    "templates_unique_names": [
        {"template": "t1", "name": "tmpl"},
        {"template": "t2", "name": "tmpl"},
        {"call": "t1"},
        {"call": "t2"},
        {"call": "t1"},
        {"call": "t2"},
    ],
    "template_after_string_scope": [
        S("tmpl/x"),
        S("tmpl_1"),
        {"template": "t", "name": "tmpl"},
        {"call": "t"},
        {"call": "t"},
    ],
    "template_in_scope_after_string": [
        S("enc/tmpl"),
        S("enc", {"template": "t", "name": "tmpl"}, {"call": "t"}, {"call": "t"}, D("tmpl")),
    ],
    "template_create_scope_now": [
        {"template": "t1", "name": "tmpl", "now": True},
        {"template": "t2", "name": "tmpl", "now": True},
        {"template": "t3", "name": "tmpl"},
        {"call": "t2"},
        {"call": "t3"},
        {"call": "t1"},
        {"call": "t2"},
        D("tmpl"),
    ],
    "template_unique_name": [
        {"template": "t", "name": "tmpl", "unique": "own"},
        {"call": "t"},
        {"call": "t"},
        D("own"),
        D("tmpl"),
    ],
    "template_called_inside_scopes": [
        {"template": "t", "name": "tmpl"},
        S("a", {"call": "t"}, D("layer")),
        S("b", {"call": "t"}, D("layer")),
    ],
}


def run(program):
    log = []
    labels = {}
    templates = {}

    def fn():
        v = tf1.get_variable("v", [1])
        log.append(v.op.name)
        with tf1.variable_scope(None, default_name="layer") as s:
            log.append(s.name)
            w = tf1.get_variable("w", [1])
            log.append(w.op.name)
        return v

    def steps(body):
        for step in body:
            one(step)

    def enter(target, step):
        reuse = {True: True, "auto": tf1.AUTO_REUSE, None: None}[step.get("reuse")]
        aux = step.get("aux", True)
        if "default" in step:
            return tf1.variable_scope(
                None, default_name=step["default"], auxiliary_name_scope=aux
            )
        return tf1.variable_scope(target, reuse=reuse, auxiliary_name_scope=aux)

    def one(step):
        if "var" in step:
            log.append(tf1.get_variable(step["var"], [1]).op.name)
        elif "template" in step:
            templates[step["template"]] = tf1.make_template(
                step["name"],
                fn,
                create_scope_now_=step.get("now", False),
                unique_name_=step.get("unique"),
            )
        elif "call" in step:
            templates[step["call"]]()
        else:
            target = labels[step["reenter"]] if "reenter" in step else step.get("scope")
            with enter(target, step) as s:
                log.append(s.name)
                if "as" in step:
                    labels[step["as"]] = s
                steps(step["body"])

    with tf.Graph().as_default():
        steps(program)
    return log


def main():
    cases = {name: {"program": p, "names": run(p)} for name, p in CASES.items()}
    out = {"tensorflow": tf.__version__, "cases": cases}
    with open(os.path.join(OUT, "default_names.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
