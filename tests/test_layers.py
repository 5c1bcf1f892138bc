"""The package's shape: layers that import only downward, no import circle (imports made
inside functions counted), no module over 400 lines of code. ARCHITECTURE.md describes
the layers; this pins them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import torchscope

# The package as imported: the checkout in development, the installed wheel in the sdist
# check (which removes the sources so that nothing imports them).
PACKAGE = Path(torchscope.__file__).resolve().parent

# Lowest first. A module may import modules of its own layer listed before it, and any
# module of a lower layer; nothing above. Imports under `if TYPE_CHECKING:` do not run
# and are not counted.
LAYERS: list[list[str]] = [
    # leaf: nothing of torchscope's below them but each other, in this order
    [
        "_version",
        "_compile_hooks",
        "_types",
        "_errors",
        "_checks",
        "_naming",
        "_graph_keys",
        "_variable",
        "_values",
        "_tf_keywords",
        "_keyed",
        "_getters",
        "_native",
        "_fastpath",
    ],
    # values and per-thread state
    ["_initializers", "_context"],
    # the lookup engine: what get_variable runs (it reads stores and scopes, imports neither)
    ["_collections", "_create", "_lookup"],
    # scope objects
    ["_variable_scope"],
    # storage: the store, the stores of the process
    ["_atomic", "_store", "_registry"],
    # scopes as context managers
    ["_name_scopes", "_scopes"],
    # adapters
    ["_policy", "_module", "_templates", "_summary", "_checkpoint", "_materialize"],
    # public submodules and the public face
    ["ops", "nn", "train", "layers", "pytest_plugin", "__init__", "__main__"],
]

# Inside a sub-package its modules are ordered the same way (lowest first; the package's
# __init__ re-exports and comes last).
SUBPACKAGE_LAYERS: dict[str, list[str]] = {
    "nn": [
        "_args",
        "_conv",
        "_conv_transpose",
        "_pool",
        "_elementwise",
        "_norm",
        "_losses",
        "__init__",
    ],
    "layers": [
        "_base",
        "_core",
        "_conv",
        "_normalization",
        "_pool",
        "__init__",
    ],
}

MAX_CODE_LINES = 400


def _modules() -> dict[str, Path]:
    """Module name (relative to the package: 'train._bundle', 'nn._conv') -> its file."""
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts)] = path
    return found


def _owner(module: str) -> str:
    """The layered unit a module belongs to: a sub-package as a whole."""
    top = module.split(".")[0]
    return top if top in ("train", "ops", "nn", "layers") else module


def _imports(path: Path, module: str) -> set[str]:
    """The torchscope modules ``path`` imports when it runs (relative to the package),
    also inside functions; not those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    package_parts = module.split(".")[:-1]  # "nn.__init__" and "nn._conv" are in "nn"
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
            else:
                if not (node.module or "").startswith("torchscope"):
                    continue
                base = []
            target = base + (node.module.split(".") if node.module and node.level else [])
            if not node.level:
                target = (node.module or "").split(".")[1:]
            for alias in node.names:
                found.add(".".join([*target, alias.name]) if target or alias.name else "")
                found.add(".".join(target))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("torchscope."):
                    found.add(alias.name.split(".", 1)[1])
    return found


def _dependencies(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules that ``module`` imports."""
    deps = set()
    for name in _imports(path, module):
        while name and name not in modules:  # "x.y" may be a name inside module "x"
            name = name.rpartition(".")[0]
        if name:
            deps.add(name)
    return deps


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        deps = _dependencies(module, path, modules)
        owner = _owner(module)
        graph.setdefault(owner, set()).update(
            _owner(d) for d in deps if _owner(d) != owner and d != "__init__"
        )
    return graph


def _rank() -> dict[str, tuple[int, int]]:
    return {m: (layer, i) for layer, names in enumerate(LAYERS) for i, m in enumerate(names)}


def test_every_module_has_a_layer():
    units = {_owner(m) for m in _modules()}
    missing = sorted(units - set(_rank()))
    assert not missing, f"modules without a layer in tests/test_layers.py: {missing}"


def test_imports_go_downward_only():
    rank = _rank()
    upward = []
    for module, deps in _graph().items():
        for dep in deps:
            if module in ("__init__", "__main__"):
                continue  # the public face imports everything
            if rank[dep] >= rank[module]:
                upward.append(f"{module} -> {dep}")
    assert not upward, "imports that do not go downward: " + ", ".join(sorted(upward))


@pytest.mark.parametrize("package", sorted(SUBPACKAGE_LAYERS))
def test_subpackage_modules_have_an_order_and_import_downward(package):
    modules = _modules()
    order = SUBPACKAGE_LAYERS[package]
    found = sorted(m.split(".", 1)[1] for m in modules if m.startswith(package + "."))
    assert sorted(order) == sorted(found), f"{package}: modules {found}, table {order}"
    upward = []
    for name in order:
        module = f"{package}.{name}"
        for dep in _dependencies(module, modules[module], modules):
            inner = dep.split(".", 1)[1] if dep.startswith(package + ".") else None
            if inner is not None and order.index(inner) >= order.index(name):
                upward.append(f"{module} -> {dep}")
    assert not upward, "imports that do not go downward: " + ", ".join(sorted(upward))


def test_no_import_circle():
    graph = _graph()
    graph.pop("__init__", None)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep == "__init__":
                continue
            if state.get(dep) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path, node, dep]))
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def _code_lines(path: Path) -> int:
    source = path.read_text()
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    count = 0
    for number, line in enumerate(source.splitlines(), 1):
        text = line.strip()
        if text and not text.startswith("#") and number not in docstrings:
            count += 1
    return count


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_is_over_400_lines_of_code(module):
    lines = _code_lines(_modules()[module])
    assert lines <= MAX_CODE_LINES, f"torchscope/{module}.py has {lines} lines of code"
