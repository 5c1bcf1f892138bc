"""The pytest plugin registered by installing torchscope: the ts_store fixture."""

import subprocess
import sys
import textwrap

import torchscope as ts

SUITE = textwrap.dedent("""
    import threading
    import torchscope as ts

    seen = []

    def test_first(ts_store):
        assert ts.get_default_store() is ts_store
        assert ts.get_variable_scope().name == ""
        with ts.variable_scope("a"):
            ts.get_variable("w", [1])
        assert list(ts_store) == ["a/w"]
        seen.append(ts_store)

    def test_second_gets_a_fresh_store(ts_store):
        assert len(ts_store) == 0 and ts_store is not seen[0]
        with ts.variable_scope("a"):
            ts.get_variable("w", [1])  # no "already exists": a fresh store

    def test_default_restored_after_fixture():
        assert ts.get_default_store() is not seen[0]
""")


def test_plugin_fixture_in_a_subprocess(tmp_path):
    (tmp_path / "test_suite.py").write_text(SUITE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_fixture_here(ts_store):
    assert ts.get_default_store() is ts_store and len(ts_store) == 0


def test_a_run_that_never_asks_for_the_fixture_imports_neither_torch_nor_torchscope(tmp_path):
    """The installed plugin is the small module _torchscope_pytest: a test run in an
    environment with torchscope installed pays nothing for it until ts_store is used."""
    (tmp_path / "test_plain.py").write_text(
        textwrap.dedent("""
            import sys

            def test_nothing_heavy_loaded():
                assert "torch" not in sys.modules
                assert "torchscope" not in sys.modules
        """)
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--trace-config",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "_torchscope_pytest" in result.stdout  # the plugin was registered
    assert "1 passed" in result.stdout


def test_the_source_module_registers_the_same_fixture(tmp_path):
    """``pytest_plugins = ["torchscope.pytest_plugin"]`` (a checkout without the entry
    point) gives the same fixture; with the installed one too, nothing clashes."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["torchscope.pytest_plugin"]\n')
    (tmp_path / "test_suite.py").write_text(SUITE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
