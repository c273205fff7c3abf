"""The shape of idp/'s imports, read from the source with `ast`: no cycles, and the protocol layer
(idp/oidc) never reaching into the web layer (idp/views, idp/web).

Every `import` and `from ... import` counts, at module level or inside a function (a deferred import
still ties two modules together) or under TYPE_CHECKING; relative imports are resolved against their
package, and `from a import b` points at the module a.b when there is one, else at a.
"""

from __future__ import annotations

import ast
from pathlib import Path

IDP = Path(__file__).resolve().parents[1] / "idp"

Graph = dict[str, frozenset[str]]


def modules_of(package: Path) -> dict[str, Path]:
    """Every module under `package` by its dotted name; a package is its __init__.py."""
    found: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(package: Path) -> Graph:
    """Each module of `package` and the modules of the same package it imports (itself left out)."""
    modules = modules_of(package)

    def known(name: str) -> str | None:
        """The module `name` is, or the package that holds it (a name imported from a module)."""
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: Graph = {}
    for module, path in modules.items():
        home = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {known(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = home.split(".")[: len(home.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets |= {known(f"{base}.{alias.name}") for alias in node.names}
        graph[module] = frozenset(target for target in targets if target is not None and target != module)
    return graph


def cycles_in(graph: Graph) -> list[list[str]]:
    """Every import cycle that a depth-first walk closes, as the path from a module back to itself."""
    found: list[list[str]] = []
    done: set[str] = set()
    path: list[str] = []

    def walk(module: str) -> None:
        path.append(module)
        for target in sorted(graph[module]):
            if target in path:
                found.append([*path[path.index(target) :], target])
            elif target not in done:
                walk(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            walk(module)
    return found


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def test_no_module_of_idp_imports_itself_back_through_others() -> None:
    assert cycles_in(import_graph(IDP)) == []


def test_the_protocol_layer_never_imports_the_web_layer() -> None:
    reaching_out = {
        (module, target)
        for module, targets in import_graph(IDP).items()
        if inside(module, "idp.oidc")
        for target in targets
        if inside(target, "idp.views") or inside(target, "idp.web")
    }
    assert reaching_out == set()


def test_a_cycle_through_a_deferred_relative_import_is_found(tmp_path: Path) -> None:
    """The checker itself: a cycle closed inside a function, by a relative import, is still a cycle."""
    package = tmp_path / "shop"
    (package / "orders").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "orders" / "__init__.py").write_text("from shop.orders.basket import Basket\n")
    (package / "orders" / "basket.py").write_text("def total():\n    from ..prices import of\n")
    (package / "prices.py").write_text("import shop.orders\n")
    (package / "tax.py").write_text("from shop import prices\nfrom . import prices as again\n")

    graph = import_graph(package)

    assert graph["shop.tax"] == {"shop.prices"}
    assert cycles_in(graph) == [["shop.orders", "shop.orders.basket", "shop.prices", "shop.orders"]]
