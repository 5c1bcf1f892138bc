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
