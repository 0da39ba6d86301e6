"""The house's shape, read from the code's own imports: no module of smppgw imports itself back
through others, and each package imports only the packages below it (the README's
"Architecture" draws the same table). Every import counts: at the top, inside functions and under
TYPE_CHECKING, since a type-only circle still leaves a reader unsure which side owns what."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "smppgw"

# package (or top-level module) of smppgw -> what it may import of the project. The same table
# as the README's "Architecture"; a change to one is a change to both.
MAY_IMPORT: dict[str, set[str]] = {
    "smpp": set(),
    "logs": set(),
    "aio": set(),
    "tokens": set(),
    "listen": set(),
    "redisd": set(),
    "metrics": set(),
    "fakes": set(),
    "config": {"smpp"},
    "providers": {"config", "smpp", "aio", "logs", "tokens"},
    "store": {"config", "providers", "smpp", "aio", "logs", "tokens", "redisd"},
    "gateway": {"config", "providers", "store", "smpp", "aio", "logs", "metrics", "tokens"},
    "server": {"config", "gateway", "store", "smpp", "logs", "metrics", "tokens"},
    "web": {"config", "gateway", "providers", "store", "smpp", "logs", "metrics"},
    "workers": {"config", "listen", "logs"},
    "admin": {"config", "gateway", "providers", "server", "web", "workers", "aio", "logs", "metrics"},
    "app": {"admin", "config", "gateway", "providers", "server", "store", "web", "aio", "listen", "logs"}
    | {"metrics"},
    "bench": {"smpp", "redisd"},
    "cli": {"admin", "app", "bench", "config", "fakes", "gateway", "providers", "workers", "logs"}
    | {"__init__"},
    "__main__": {"cli"},
    "__init__": set(),
}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ["smppgw", *path.relative_to(ROOT).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (a name imported from a package is its submodule
    when there is one; otherwise the package's own module)."""
    mods = _modules()

    def known(name: str) -> str:
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in mods else ""

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, (path, is_pkg) in mods.items():
        base = name if is_pkg else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    up = base.split(".")[: len(base.split(".")) - (node.level - 1)]
                    mod = ".".join(up + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
            for t in targets:
                if t == "smppgw" or t.startswith("smppgw."):
                    hit = known(t)
                    if hit and hit != name:
                        graph[name].add(hit)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_the_graph_sees_imports_of_every_kind():
    graph = import_graph()
    assert "smppgw.smpp.codec" in graph["smppgw.server.protocol"]  # at the top
    assert "smppgw.app" in graph["smppgw.cli"]  # inside a function
    assert "smppgw.gateway.held" in graph["smppgw.gateway.operations"]  # under TYPE_CHECKING
    assert "smppgw.store.redis.store" in graph["smppgw.app"]  # a submodule named in `from`


def test_cycles_finds_a_loop_and_only_the_loop():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back():
    assert cycles(import_graph()) == []


def test_each_package_imports_only_what_lies_below_it():
    wrong = []
    for module, targets in import_graph().items():
        here = _package(module)
        assert here in MAY_IMPORT, f"{here} (from {module}) is not in the layer table"
        for target in sorted(targets):
            there = _package(target)
            if there != here and there not in MAY_IMPORT[here]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_the_layer_table_itself_has_no_circle():
    assert cycles({p: set(deps) - {p} for p, deps in MAY_IMPORT.items()}) == []


def test_the_protocol_core_imports_only_the_standard_library():
    graph = import_graph()
    outside = {t for m, ts in graph.items() if m.startswith("smppgw.smpp.") for t in ts}
    assert {t for t in outside if not t.startswith("smppgw.smpp")} == set()
