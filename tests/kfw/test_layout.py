"""The import graph of ``kfw/``: no cycles, and every layer imports only the layers below it.

The layers, from the bottom (``kfw/__init__.py`` says what each holds):

    base      kfw.errors, kfw.progress, kfw.files, kfw.threads, kfw.markdown
    core      kfw.core: config, metrics, folds, encoding, registry, cv, noise, runstore
    kaggle    kfw.kaggle: the data, the open copies, the client, submissions, leaderboard
    pipeline  kfw.pipeline: design, context, model runs, the W&B mirror, tuned parameters
    dl        kfw.dl: torch estimators, the transformer, language models, reproductions
    ensemble  kfw.ensemble: stacking, the roster and its ensemble
    study     kfw.study: tuning, the audit, adversarial validation, ablation, the bake-off
    report    kfw.report: the generated write-up
    cli       kfw.cli and kfw.__main__

Every import counts, at module level or inside a function (an import hidden in a function is
still a dependency), except those under ``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

KFW = Path(__file__).resolve().parents[2] / "kfw"
LAYERS = [
    (
        "base",
        (
            "kfw",
            "kfw.errors",
            "kfw.progress",
            "kfw.files",
            "kfw.threads",
            "kfw.markdown",
            "kfw.versions",
        ),
    ),
    ("core", ("kfw.core",)),
    ("kaggle", ("kfw.kaggle",)),
    ("pipeline", ("kfw.pipeline",)),
    ("dl", ("kfw.dl",)),
    ("rl", ("kfw.rl",)),
    ("ensemble", ("kfw.ensemble",)),
    ("study", ("kfw.study",)),
    ("report", ("kfw.report",)),
    ("cli", ("kfw.cli", "kfw.__main__")),
]
# the function-local kfw imports outside the CLI that remain, each keeping torch out of a
# command that does not need it
LAZY = {("kfw.study.ablate", "kfw.dl.estimator")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(KFW.rglob("*.py")):
        parts = path.relative_to(KFW.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _layer(name: str) -> int:
    found = [
        i
        for i, (_, prefixes) in enumerate(LAYERS)
        for p in prefixes
        if name == p or (p != "kfw" and name.startswith(p + "."))
    ]
    assert found, f"{name} belongs to no layer: add it to LAYERS (and to kfw/__init__.py)"
    return max(found)


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skip |= {id(n) for n in ast.walk(inner)}
    return skip


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, bool]]:
    """``(imported kfw module, inside a function)`` for every runtime import of ``name``."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    local = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        for n in ast.walk(f)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            # "from package import module" depends on the module, not on the package
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t.startswith("kfw") and t != name:
                found.append((t, id(node) in local))
    return found


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    local = []
    for name, path in modules.items():
        for target, in_function in _imports(name, path, modules):
            edges[name].add(target)
            if in_function and not name.startswith("kfw.cli"):
                local.append((name, target))
    return edges, local


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_inside_kfw() -> None:
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_every_layer_imports_only_the_layers_below() -> None:
    edges, _ = _graph()
    upward = [
        f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
        for a, targets in edges.items()
        for b in sorted(targets)
        if _layer(b) > _layer(a)
    ]
    assert upward == []


def test_function_local_kfw_imports_only_keep_torch_out() -> None:
    _, local = _graph()
    assert set(local) <= LAZY, sorted(set(local) - LAZY)


def test_the_graph_check_sees_a_planted_cycle_and_an_upward_import() -> None:
    edges = {"kfw.core.a": {"kfw.core.b"}, "kfw.core.b": {"kfw.core.a"}, "kfw.cli.x": set()}
    assert _cycles(edges) == [["kfw.core.a", "kfw.core.b"]]
    assert _layer("kfw.core.cv") < _layer("kfw.cli.app") and _layer("kfw.errors") == 0
