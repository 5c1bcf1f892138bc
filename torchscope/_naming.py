"""Names: validating, joining and making unique.

Every name torchscope hands out goes through this module. Full variable names
follow TensorFlow's op-name rule, without ``.`` (PyTorch forbids it in parameter
names): the first character is a letter or digit, the rest letters, digits and
``_ - / > \\``, and no path component is empty. A scope name follows the same rule
where it begins a full name (at the root, as TensorFlow checks it against its op-name
rule there); below the root it may also begin with ``_ - > \\``. The full name is also the
variable's key in its store's ``ParameterDict`` and in ``state_dict()``, so the
mapping from names to keys is the identity.

Uniqueness ("foo", then "foo_1") is TensorFlow's rule, case-insensitive, over
one counter table. Each name-scope *entry* owns the table of the names opened directly
inside it, and the table is dropped when that entry closes; see :func:`unique_name`.

``default_name`` counts variable scopes as TensorFlow's ``variable_scopes_count`` does:
by full name, one record per thread and store; see :class:`OpenedScopes`.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ._compile_hooks import when_dynamo_loads

__all__ = [
    "OpenedScopes",
    "check_scope_name",
    "check_variable_name",
    "is_checked_scope_name",
    "join",
    "mark_used",
    "unique_name",
]

_ALLOWED = "letters, digits and '_', '-', '/', '>', '\\'"
_NOT_FIRST_AT_ROOT = "_->\\"  # allowed in a scope name, but not as a full name's first character
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-/>\\]*")
_SCOPE_NAME = re.compile(r"[A-Za-z0-9_\-/>\\]+")


def join(prefix: str, name: str) -> str:
    """Joins a scope name and a relative name with ``/``.

    >>> join("foo/bar", "v"), join("", "v")
    ('foo/bar/v', 'v')
    """
    return f"{prefix}/{name}" if prefix else name


def _check_components(kind: str, name: str) -> None:
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise ValueError(
            f"{kind} name {name!r} has an empty path component (a leading, trailing or "
            "doubled '/'); use names like 'conv1/weights'."
        )


def check_variable_name(full_name: str) -> str:
    """Returns ``full_name`` if it is a valid full variable name, else raises ValueError.

    >>> check_variable_name("conv1/weights")
    'conv1/weights'
    >>> check_variable_name("conv1.weights")
    Traceback (most recent call last):
    ...
    ValueError: variable name 'conv1.weights' is not valid: ...
    """
    if not isinstance(full_name, str):
        raise TypeError(
            f"variable name must be a str, got {type(full_name).__name__}: {full_name!r}"
        )
    if not _VARIABLE_NAME.fullmatch(full_name):
        if not full_name:
            raise ValueError(
                "variable name is empty; give get_variable a non-empty name such as 'w'."
            )
        raise ValueError(
            f"variable name {full_name!r} is not valid: a full name starts with a letter or digit "
            f"and holds only {_ALLOWED} ('.' is not allowed: PyTorch reserves it in parameter "
            "names)."
        )
    _check_components("variable", full_name)
    return full_name


# Names seen that are valid anywhere, the root included (a forward re-checks the same few).
# Names valid only below the root are not kept: their check depends on where they are opened.
_CHECKED_SCOPE_NAMES: dict[str, None] = {}


def is_checked_scope_name(name: Any) -> bool:
    """Whether ``name`` is a scope name already found valid, at the root too: the scopes'
    fast path.

    ``torch.compile`` takes the answer as a constant (a valid name stays valid) instead
    of guarding on the table's contents (guards on every scope name, every call).
    """
    return type(name) is str and name in _CHECKED_SCOPE_NAMES


when_dynamo_loads(lambda: torch.compiler.assume_constant_result(is_checked_scope_name))


def check_scope_name(name: str, kind: str = "scope", *, root: bool = False) -> str:
    """Returns ``name`` if it is a valid (relative) scope name, else raises ValueError.

    With ``root``, the name begins a full name (it is opened at the root, or it is an
    absolute name), and must start with a letter or digit, as a full name does.

    >>> check_scope_name("layer_1/conv"), check_scope_name("_private")
    ('layer_1/conv', '_private')
    >>> check_scope_name("_private", "variable_scope", root=True)
    Traceback (most recent call last):
    ...
    ValueError: variable_scope name '_private' is not valid at the root: ...
    """
    if type(name) is str and name in _CHECKED_SCOPE_NAMES:
        return name
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a str, got {type(name).__name__}: {name!r}")
    if not _SCOPE_NAME.fullmatch(name):
        if not name:
            raise ValueError(f"{kind} name is empty; give a non-empty name such as 'layer'.")
        raise ValueError(
            f"{kind} name {name!r} is not valid: scope names hold only {_ALLOWED} "
            "('.' is not allowed: PyTorch reserves it in parameter names)."
        )
    _check_components(kind, name)
    if name[0] in _NOT_FIRST_AT_ROOT:
        if root:
            raise ValueError(
                f"{kind} name {name!r} is not valid at the root: a scope opened there begins "
                "the full names of what it holds, which start with a letter or digit (below "
                f"the root a scope name may also start with '_', '-', '>' or '\\'); rename "
                f"it, for example {name.lstrip(_NOT_FIRST_AT_ROOT) or 'scope'!r}."
            )
        return name  # not cached: valid only below the root
    if len(_CHECKED_SCOPE_NAMES) >= 4096:  # bounded: names made in a loop do not pile up
        _CHECKED_SCOPE_NAMES.clear()
    _CHECKED_SCOPE_NAMES[name] = None
    return name


def mark_used(counts: dict[str, int], name: str) -> None:
    """Records that ``name`` is taken among its siblings (a variable scope's name scope).

    Only the first use writes: re-entering the same scope every step leaves the
    table as it was, so ``torch.compile`` sees the same state on every call.
    """
    key = name.lower()
    if key not in counts:
        counts[key] = 1


def _is_used(counts: dict[str, int], key: str) -> bool:
    """Whether ``key`` was opened, or minted by :func:`unique_name`, among these siblings.

    Minted names (``foo_3``) are not stored: they are recognised from the counter of
    their base name, so the table holds one entry per distinct requested name and a
    loop that re-opens ``foo`` does not grow it.
    """
    if counts.get(key, 0) > 0:
        return True
    base, sep, suffix = key.rpartition("_")
    return bool(sep) and suffix.isdigit() and suffix[0] != "0" and counts.get(base, 0) > int(suffix)


def unique_name(counts: dict[str, int], name: str, mark: bool = True) -> str:
    """Returns ``name`` made unique among siblings, TensorFlow's way.

    The first ``foo`` stays ``foo``; later ones become ``foo_1``, ``foo_2``, ...,
    skipping names already taken. Comparison ignores case, as in TensorFlow.

    >>> counts = {}
    >>> [unique_name(counts, "foo") for _ in range(3)]
    ['foo', 'foo_1', 'foo_2']
    >>> unique_name(counts, "foo_1")
    'foo_1_1'
    """
    key = name.lower()
    if not _is_used(counts, key):
        if mark:
            counts[key] = counts.get(key, 0) + 1
        return name
    i = max(counts.get(key, 0), 1)
    while _is_used(counts, f"{key}_{i}"):
        i += 1
    if mark:
        counts[key] = i + 1
    return f"{name}_{i}"


# -- which variable scopes were opened (default_name) -------------------------------------------

Node = dict[str, Any]
"""A node of :class:`OpenedScopes`: its children by name component; the key ``""`` (never a
component) is present when the scope of the node's own full name was opened."""


class OpenedScopes:
    """The variable scopes opened on one thread in one store, by full name: TensorFlow's
    ``variable_scopes_count``, which ``variable_scope(None, default_name=...)`` consults.

    TensorFlow's rules, which this keeps: entering a scope records its full name
    (``"enc/layer"`` opened at the root counts for ``default_name="layer"`` inside
    ``"enc"``); leaving a scope entered by name forgets every name below it, wherever that
    was opened; leaving a re-entered captured scope puts back what was recorded when it was
    entered (a template's every call names alike).

    The names are a tree of name components, so that leaving a scope forgets its subtree in
    one step instead of a scan over every name. Putting back is an undo journal, kept only
    while something may need it (a captured scope or a transaction is open: see
    :meth:`mark`); a loop that re-enters the same scopes records nothing new.

    >>> opened = OpenedScopes()
    >>> node = opened.open("enc/layer")
    >>> opened.was_opened("enc/layer"), opened.was_opened("enc")
    (True, False)
    >>> opened.close(opened.open("enc"))
    >>> opened.was_opened("enc/layer")
    False
    """

    __slots__ = ("root", "journal", "marks")

    def __init__(self) -> None:
        self.root: Node = {}
        self.journal: list[tuple[Node, Node]] | None = None
        self.marks: int = 0

    def _change(self, node: Node) -> None:
        """Keeps what ``node`` holds before a change, while a mark may need it back."""
        journal = self.journal
        if journal is not None:
            journal.append((node, dict(node)))

    def find(self, full_name: str) -> Node:
        """The node of ``full_name`` (made if missing), recording nothing as opened."""
        node = self.root
        if full_name:
            journal = self.journal
            for part in full_name.split("/"):
                child = node.get(part)
                if child is None:
                    if journal is not None:
                        journal.append((node, dict(node)))
                    child = node[part] = {}
                node = child
        return node

    def open(self, full_name: str, below: Node | None = None) -> Node:
        """Records that the scope ``full_name`` (relative to the node ``below``, if given)
        was entered; returns its node (which :meth:`close` takes when the entry ends)."""
        node = self.root if below is None else below
        for part in full_name.split("/"):
            child = node.get(part)
            if child is None:
                self._change(node)
                child = node[part] = {}
            node = child
        if "" not in node:  # only the first entry writes: a loop leaves the tree alone
            self._change(node)
            node[""] = 1
        return node

    def close(self, node: Node) -> None:
        """Forgets the scopes below ``node``'s (a scope entered by name is left)."""
        if len(node) > ("" in node):
            self._change(node)
            opened = "" in node
            node.clear()
            if opened:
                node[""] = 1

    def forget_below(self, full_name: str) -> None:
        """:meth:`close` for the scope ``full_name``, found by name (nothing if it has no
        node)."""
        node: Node | None = self.root
        for part in full_name.split("/"):
            node = node.get(part)  # type: ignore[union-attr]  (checked below)
            if node is None:
                return
        self.close(node)  # type: ignore[arg-type]  (the loop runs at least once)

    def was_opened(self, full_name: str) -> bool:
        """Whether the scope ``full_name`` was entered and is not forgotten."""
        node: Node | None = self.root
        for part in full_name.split("/"):
            node = node.get(part)  # type: ignore[union-attr]  (checked below)
            if node is None:
                return False
        return "" in node  # type: ignore[operator]  (the loop runs at least once)

    def unique(self, prefix: str, name: str) -> str:
        """TensorFlow's ``default_name`` rule in the scope of ``prefix`` (its name and
        ``/``; ``""`` at the root): ``name`` unless ``prefix + name`` was opened, else the
        first of ``name_1``, ``name_2``, ... that was not."""
        full = prefix + name
        if not self.was_opened(full):
            return name
        index = 1
        while self.was_opened(f"{full}_{index}"):
            index += 1
        return f"{name}_{index}"

    def mark(self) -> int:
        """Begins keeping what changes, for :meth:`undo`; pair with :meth:`release`."""
        if self.journal is None:
            self.journal = []
        self.marks += 1
        return len(self.journal)

    def undo(self, mark: int) -> None:
        """Puts back what changed since ``mark`` was taken."""
        journal = self.journal
        if journal is None:
            return
        while len(journal) > mark:
            node, held = journal.pop()
            node.clear()
            node.update(held)

    def release(self) -> None:
        """Ends a :meth:`mark` (kept or undone); the last one drops the journal."""
        self.marks -= 1
        if self.marks <= 0:
            self.marks, self.journal = 0, None

    def copy(self) -> OpenedScopes:
        """An independent copy of what was opened (no journal)."""
        other = OpenedScopes()
        other.root = _copy_node(self.root)
        return other


def _copy_node(node: Node) -> Node:
    return {k: (v if k == "" else _copy_node(v)) for k, v in node.items()}
