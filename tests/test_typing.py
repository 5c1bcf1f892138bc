"""What a user's type checker sees: pyright (strict) passes the typed tour in
``tests/typed/``, and infers torchscope's real types (``reveal_type``) where ``nn.Module``
would say ``Any``. Skipped where pyright is not installed; ``.ci/run`` installs it."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import torchscope as ts

ROOT = Path(__file__).resolve().parent.parent

needs_pyright = pytest.mark.skipif(shutil.which("pyright") is None, reason="pyright not installed")

# Each reveal_type line ends with the type pyright must reveal; the last call must fail.
SNIPPET = textwrap.dedent(
    """
    import torch
    import torchscope as ts

    def pair(x: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, int]:
        return x, k

    class Subclass(ts.ScopedModule):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    x = torch.ones(1)
    reveal_type(ts.get_variable("w", [1]))  # Parameter
    with ts.variable_scope("s") as scope:
        reveal_type(scope)  # VariableScope
    reveal_type(ts.ScopedModule(pair)(x))  # tuple[Tensor, int]
    reveal_type(ts.ScopedModule(pair, name="net").store)  # VariableStore
    reveal_type(Subclass()(x))  # Any
    reveal_type(ts.make_template("t", pair)(x, k=3))  # tuple[Tensor, int]
    reveal_type(ts.make_template("t", pair, k=3))  # Template[..., tuple[Tensor, int]]
    reveal_type(ts.checkpoint(pair, x))  # tuple[Tensor, int]
    reveal_type(ts.get_default_store())  # VariableStore
    ts.ScopedModule(pair)("not a tensor")  # error: called as pair is
    """
)


def _pyright(*paths: Path | str) -> list[dict]:
    """pyright's diagnostics for ``paths``, run from the repository (its ``[tool.pyright]``
    settings) with this checkout first on the import path, whatever is installed."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        ["pyright", "--outputjson", "--pythonpath", sys.executable, *map(str, paths)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        return json.loads(done.stdout)["generalDiagnostics"]
    except (json.JSONDecodeError, KeyError):
        pytest.fail(f"pyright gave no report (exit {done.returncode}):\n{done.stdout}{done.stderr}")


def _shown(diagnostics: list[dict]) -> str:
    return "\n".join(
        f"{Path(d['file']).name}:{d['range']['start']['line'] + 1}: {d['severity']}: {d['message']}"
        for d in diagnostics
    )


@needs_pyright
def test_the_typed_tour_passes_pyright_strict():
    found = [d for d in _pyright(ROOT / "tests" / "typed") if d["severity"] != "information"]
    assert not found, "pyright (strict) on tests/typed/:\n" + _shown(found)


@needs_pyright
def test_pyright_infers_torchscope_types(tmp_path):
    snippet = tmp_path / "reveal.py"
    snippet.write_text(SNIPPET)
    lines = SNIPPET.splitlines()
    diagnostics = _pyright(snippet)
    revealed = {
        d["range"]["start"]["line"]: d["message"].rpartition(" is ")[2].strip('"')
        for d in diagnostics
        if d["severity"] == "information" and d["message"].startswith("Type of")
    }
    expected = {
        i: line.rpartition("# ")[2] for i, line in enumerate(lines) if "reveal_type(" in line
    }
    assert revealed == expected, _shown(diagnostics)
    errors = [d for d in diagnostics if d["severity"] == "error"]
    assert [d["range"]["start"]["line"] for d in errors] == [len(lines) - 1], _shown(errors)
    assert "not assignable" in errors[0]["message"]


def test_the_typed_tour_runs(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "typed_tour", ROOT / "tests" / "typed" / "tour.py"
    )
    assert spec is not None and spec.loader is not None
    tour = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tour)
    tour.tour(str(tmp_path))
    ts.reset_default_store()
    tour.train_tour(str(tmp_path))


@needs_pyright
def test_pyright_finds_the_installed_package(tmp_path):
    """From outside the checkout, with nothing on PYTHONPATH: what the install itself gives a
    type checker. The README's editable install is in setuptools' "compat" mode (a path in a
    .pth file, which pyright follows; the default mode's import hook it cannot)."""
    user_code = tmp_path / "user_code.py"
    user_code.write_text("import torchscope as ts\n\nreveal_type(ts.get_variable)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        ["pyright", "--outputjson", "--pythonpath", sys.executable, str(user_code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    diagnostics = json.loads(done.stdout)["generalDiagnostics"]
    errors = [d for d in diagnostics if d["severity"] == "error"]
    assert not errors, _shown(errors)
    (revealed,) = [d["message"] for d in diagnostics if d["message"].startswith("Type of")]
    assert "-> Parameter" in revealed, revealed
