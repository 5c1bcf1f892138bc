"""pytest plugin, registered by installing torchscope (entry point ``pytest11``).

The fixture ``ts_store`` gives a test a fresh default store (the fixture's value)
and an empty scope stack, and puts the previous default back afterwards::

    def test_dense(ts_store):
        with ts.variable_scope("dense"):
            ts.get_variable("w", [2, 2])
        assert list(ts_store) == ["dense/w"]
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import _context
from ._store import VariableStore


@pytest.fixture
def ts_store() -> Iterator[VariableStore]:
    """A fresh default ``VariableStore`` with an empty scope stack, for one test."""
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
