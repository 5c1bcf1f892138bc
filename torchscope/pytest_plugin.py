"""The ``ts_store`` pytest fixture.

Installing torchscope registers it (entry point ``pytest11``, through the small
top-level module ``_torchscope_pytest``, which imports neither torch nor torchscope
until a test asks for the fixture, so test runs that never use it pay nothing). The
fixture gives a test a fresh default store (the fixture's value) and an empty scope
stack, and puts the previous default back afterwards::

    def test_dense(ts_store):
        with ts.variable_scope("dense"):
            ts.get_variable("w", [2, 2])
        assert list(ts_store) == ["dense/w"]

Without the installed package's entry point (a source checkout on ``sys.path``),
``pytest_plugins = ["torchscope.pytest_plugin"]`` in a ``conftest.py`` registers
the same fixture.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import _context
from ._store import VariableStore


def fresh_store() -> Iterator[VariableStore]:
    """The fixture's body: a fresh default ``VariableStore`` and an empty scope stack
    while the generator is suspended, the previous default back when it resumes."""
    if _context.is_open():
        raise RuntimeError(
            "ts_store: a store's as_default() block or a ScopedModule call is still open on "
            "this thread from earlier code; close it before the test starts."
        )
    previous = _context.DEFAULT[0]
    store = VariableStore()
    _context.DEFAULT[0] = store
    try:
        yield store
    finally:
        _context.DEFAULT[0] = previous


@pytest.fixture
def ts_store() -> Iterator[VariableStore]:
    """A fresh default ``VariableStore`` with an empty scope stack, for one test."""
    yield from fresh_store()
