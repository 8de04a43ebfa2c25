"""The import graph, read from the source (AST): no circles, and imports run one way,
down the layers docs/architecture.md draws. An import inside `if TYPE_CHECKING:` is a
type annotation, not a dependency, and is not counted."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top. A module may import its own package and any package of a lower rank;
# packages of equal rank may not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("policies",),
    ("gateway",),  # the package's own docstring
    ("gateway.core",),
    ("gateway.providers",),
    ("gateway.config",),
    ("gateway.ops", "gateway.database", "gateway.apis", "gateway.simulator"),
    ("gateway.translate",),
    ("gateway.upstream",),
    ("gateway.enforcement",),
    ("gateway.runtime",),
    ("gateway.team",),
    ("gateway.http",),
    ("gateway.admin",),
    ("gateway.console",),
    ("gateway.routes",),  # every route, in one table
    ("gateway.app",),  # assembly: the app, its server, the demo, the command line
    ("gateway.server",),
    ("gateway.demo",),
    ("gateway.cli",),
    ("gateway.__main__",),
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
# Narrower rules than the ranks.
ONLY = {"gateway.simulator": {"gateway.core"}}  # it stands apart: the upstream, simulated


def modules() -> dict[str, Path]:
    found = {}
    for path in [*ROOT.glob("gateway/**/*.py"), *ROOT.glob("policies/**/*.py")]:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def package_of(module: str) -> str:
    """The layer package a module belongs to (the longest prefix in RANK)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANK and (n > 1 or module in ("gateway", "policies")
                                            or parts[0] == "policies"):
            return ".".join(parts[:n])
    raise AssertionError(f"{module} is in no layer of LAYERS: add it")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import, at any depth (a function's too), but those for type checking."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        out = set()
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                    package = package[: len(package) - node.level + 1]
                    base = ".".join([*package, *([base] if base else [])])
                # `from package import module` depends on the module (import-linter's
                # reading); `from module import name`, on the module.
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                         for a in node.names]
            for name in names:
                target = _resolve(name)
                if target is not None and target != module:
                    out.add(target)
        edges[module] = out
    return edges


GRAPH = graph()


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        package_of(module)


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Imports that run up the layers, or across to another package of the same rank."""
    wrong = []
    for module, targets in edges.items():
        mine = package_of(module)
        for target in targets:
            theirs = package_of(target)
            if theirs == mine:
                continue
            allowed = ONLY.get(mine)
            if RANK[theirs] >= RANK[mine] or (allowed is not None and theirs not in allowed
                                               and theirs != "policies"):
                wrong.append(f"{module} -> {target}")
    return sorted(wrong)


def test_no_import_runs_up_or_across_the_layers() -> None:
    wrong = violations(GRAPH)
    assert not wrong, "imports against the layer order:\n  " + "\n  ".join(wrong)


def test_policies_never_import_the_gateway() -> None:
    assert not [(m, t) for m, ts in GRAPH.items() if m.startswith("policies")
                for t in ts if t.startswith("gateway")]


def test_no_import_circles() -> None:
    # Tarjan's strongly connected components: any with more than one module is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"


def test_the_check_sees_a_wrong_import() -> None:
    """The rules are not vacuous: the graph holds the imports that are there, and an
    upward, a sideways or a simulator's import into the gateway would be found."""
    assert "gateway.upstream.exchange" in GRAPH["gateway.http.proxy"]
    assert violations({"gateway.upstream.exchange": {"gateway.http.relay"},
                       "gateway.ops.metrics": {"gateway.apis.chat"},
                       "gateway.simulator.app": {"gateway.config.models"},
                       "gateway.http.relay": {"gateway.upstream.client"}}) == [
        "gateway.ops.metrics -> gateway.apis.chat",
        "gateway.simulator.app -> gateway.config.models",
        "gateway.upstream.exchange -> gateway.http.relay"]


def test_every_module_says_what_it_is_for() -> None:
    missing = [m for m, path in MODULES.items()
               if path.stat().st_size and ast.get_docstring(ast.parse(path.read_text())) is None]
    assert not missing, f"modules without a docstring: {missing}"


def test_each_package_says_what_it_may_import_and_keeps_to_it() -> None:
    """A gateway package's docstring ends with "May import: a, b, c." naming the rooms it
    may use (besides policies); its modules import nothing else of the gateway."""
    wrong = []
    for package in [p for p in RANK if p.startswith("gateway.") and (ROOT / p.replace(".", "/")).is_dir()]:
        doc = ast.get_docstring(ast.parse(MODULES[package].read_text())) or ""
        said = re.search(r"May import: ([^.]+)\.", doc.replace("\n", " "))
        if said is None:
            wrong.append(f"{package}: no 'May import:' line")
            continue
        allowed = {"gateway." + w.split()[0] for w in said.group(1).split(";")[0].split(",") if w.strip()}
        allowed = {a for a in allowed if a in RANK}
        used = {package_of(t) for m, ts in GRAPH.items() if package_of(m) == package for t in ts}
        extra = {u for u in used - allowed - {package} if u.startswith("gateway")}
        if extra:
            wrong.append(f"{package} imports {sorted(extra)} beyond what its docstring says")
    assert not wrong, "\n".join(wrong)
