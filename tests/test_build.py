"""What setup.py and the loader do with builds that cannot be right: a build that cannot
see torch, a compiler that cannot compile, libraries built for another torch."""

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
import torch

import torchscope as ts

ROOT = Path(__file__).resolve().parents[1]


def _setup_module():
    spec = importlib.util.spec_from_file_location("torchscope_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: defines the functions, builds nothing
    return module


def test_a_compiler_that_is_missing_or_cannot_compile_counts_as_none(tmp_path):
    setup = _setup_module()
    assert not setup._compiler_works("no-such-compiler-anywhere")
    broken = tmp_path / "broken-c++"
    broken.write_text("#!/bin/sh\necho 'internal compiler error' >&2\nexit 1\n")
    broken.chmod(0o755)
    assert not setup._compiler_works(str(broken))
    if shutil.which("c++") is not None:
        assert setup._compiler_works("c++")


def test_a_build_that_cannot_import_torch_stops_at_once_saying_what_to_type():
    """pip's build isolation: torch is not a build requirement, so the isolated build has
    none; a wheel build stops before compiling anything, an sdist builds."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # import torch raises ImportError
        sys.path.insert(0, {str(ROOT)!r})
        import importlib.util
        spec = importlib.util.spec_from_file_location("s", {str(ROOT / "setup.py")!r})
        setup = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(setup)
        sys.argv = ["setup.py", "sdist"]
        assert setup._extensions() == ([], {{}})
        sys.argv = ["setup.py", "bdist_wheel"]
        setup._extensions()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1, result.stderr
    assert "pip install --no-build-isolation ." in result.stderr
    assert "TORCHSCOPE_NO_EXTENSION=1" in result.stderr


def test_torch_is_not_a_build_requirement():
    text = (ROOT / "pyproject.toml").read_text()
    requires = text.split("[build-system]")[1].split("[project]")[0]
    assert "torch" not in requires.split("requires")[1].split("\n")[0]


@pytest.mark.skipif(not ts.ops.native_available(), reason="compiled extension not built")
def test_libraries_built_for_another_torch_are_not_loaded_and_the_warning_says_why(tmp_path):
    """A copy of the package whose build record names another torch: neither _C nor
    _fastpaths is loaded, the op falls back, and the warning gives the command."""
    package = Path(ts.__file__).parent
    copy = tmp_path / "torchscope"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "_build_info.json").write_text(json.dumps({"torch": "9.9.9", "cuda": None}))
    code = textwrap.dedent(
        """
        import warnings
        import torch
        import torchscope as ts
        from torchscope import _fastpath, _native
        assert ts.__file__.startswith(COPY), ts.__file__
        assert not _native.LOADED and not _fastpath.compiled
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y = ts.ops.conv2d_bias_relu(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1), None)
        assert y.shape == (1, 1, 2, 2)
        print(str(caught[0].message))
        """
    ).replace("COPY", repr(str(copy)))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    message = result.stdout
    assert f"built for torch 9.9.9, running torch {torch.__version__}" in message
    assert "pip install --no-build-isolation ." in message
    assert "C++ compiler" not in message  # not the advice for a missing build


def test_the_build_record_matches_the_running_torch():
    from torchscope import _native

    record = Path(_native.__file__).parent / "_build_info.json"
    if not record.exists():
        pytest.skip("no _build_info.json: the extension was built before the record existed")
    assert json.loads(record.read_text())["torch"] == torch.__version__
    assert _native.build_mismatch() is None


def test_one_source_for_the_version():
    from torchscope._version import __version__

    assert ts.__version__ == __version__
    assert (
        'version = "'
        not in (ROOT / "pyproject.toml").read_text().split("[project]")[1].split("\n[")[0]
    )
