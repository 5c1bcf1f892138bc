"""``default_name`` and template names against TensorFlow's answers.

TensorFlow counts the variable scopes opened by their full names (its
``variable_scopes_count``): a scope ``"enc/layer"`` opened at the root counts for
``default_name="layer"`` inside ``"enc"``; closing ``"enc"`` forgets what was opened below it;
leaving a re-entered captured scope puts back the counts found on entry. The programs and
TensorFlow 2.21's names are in ``tests/data/tf_scopes/default_names.json``
(``make_goldens.py`` there made it and describes the programs).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from tf_fixtures import DATA

import torchscope as ts

GOLDEN = json.loads((DATA / "tf_scopes" / "default_names.json").read_text())
REUSE = {True: True, "auto": ts.AUTO_REUSE, None: None}


def run(program: list[dict[str, Any]]) -> list[str]:
    """The names ``program`` gives in torchscope, in the order TensorFlow's run logged them."""
    log: list[str] = []
    labels: dict[str, ts.VariableScope] = {}
    templates: dict[str, Any] = {}

    def fn():
        v = ts.get_variable("v", [1])
        log.append(ts.name_of(v))
        with ts.variable_scope(None, default_name="layer") as s:
            log.append(s.name)
            log.append(ts.name_of(ts.get_variable("w", [1])))
        return v

    def enter(step):
        aux = step.get("aux", True)
        if "default" in step:
            return ts.variable_scope(None, default_name=step["default"], auxiliary_name_scope=aux)
        target = labels[step["reenter"]] if "reenter" in step else step["scope"]
        return ts.variable_scope(target, reuse=REUSE[step.get("reuse")], auxiliary_name_scope=aux)

    def steps(body):
        for step in body:
            if "var" in step:
                log.append(ts.name_of(ts.get_variable(step["var"], [1])))
            elif "template" in step:
                templates[step["template"]] = ts.make_template(
                    step["name"],
                    fn,
                    create_scope_now_=step.get("now", False),
                    unique_name_=step.get("unique"),
                )
            elif "call" in step:
                templates[step["call"]]()
            else:
                with enter(step) as s:
                    log.append(s.name)
                    if "as" in step:
                        labels[step["as"]] = s
                    steps(step["body"])

    steps(program)
    return log


@pytest.mark.parametrize("case", sorted(GOLDEN["cases"]))
def test_names_match_tensorflow(ts_store, case):
    expected = GOLDEN["cases"][case]
    assert run(expected["program"]) == expected["names"]


@pytest.mark.parametrize("name", [None, "m"])
@pytest.mark.parametrize("case", sorted(GOLDEN["cases"]))
def test_a_scoped_module_names_the_same_on_every_call(case, name):
    program = GOLDEN["cases"][case]["program"]
    if any("template" in step for step in program):
        pytest.skip("a template made inside the call is a new template each call")
    logs: list[list[str]] = []

    def forward():
        log: list[str] = []
        logs.append(log)
        log.extend(run(program))

    module = ts.ScopedModule(forward, name=name)
    for _ in range(3):
        # a later call that would create raises: the names it got to are still compared
        with contextlib.suppress(ValueError):
            module()
    prefix = "" if name is None else name + "/"
    expected = [prefix + n if n else name or "" for n in GOLDEN["cases"][case]["names"]]
    assert logs[0] == expected
    for later in logs[1:]:  # each call starts from a fresh record of opened scopes
        assert later == expected[: len(later)]


def test_a_template_names_the_same_on_every_call_in_a_scoped_module():
    names: list[list[str]] = []

    def forward():
        with ts.variable_scope("enc/tmpl"):
            pass
        with ts.variable_scope("enc"):
            log = [ts.get_variable_scope().name]
            with ts.variable_scope(None, default_name="tmpl") as s:
                log.append(s.name)
            log.append(ts.name_of(template()))
            with ts.variable_scope(None, default_name="tmpl") as s:
                log.append(s.name)
        names.append(log)

    def body():
        with ts.variable_scope(None, default_name="layer") as s:
            return ts.get_variable("v", [1], initializer=ts.zeros_initializer()), s

    template = ts.make_template("tmpl", lambda: body()[0])
    module = ts.ScopedModule(forward)
    module()
    module()
    assert names[0] == names[1] == ["enc", "enc/tmpl_1", "enc/tmpl_2/layer/v", "enc/tmpl_3"]


def test_a_failed_entry_takes_back_its_count(ts_store):
    with ts.variable_scope("enc"):
        with (
            pytest.raises(ValueError, match="exists"),
            ts_store.transaction(),
            ts.variable_scope(None, default_name="layer"),
        ):
            ts.get_variable("v", [1])
            ts.get_variable("v", [1])
        with ts.variable_scope(None, default_name="layer") as s:
            assert s.name == "enc/layer"
