"""scratch_models stays NumPy: an AST check of every module's imports, and the public names."""

from __future__ import annotations

import ast
from pathlib import Path

import scratch_models

ROOT = Path(scratch_models.__file__).parent
# the learning is NumPy; scikit-learn lends only the estimator plumbing and input checks
ALLOWED = {"numpy", "sklearn.base", "sklearn.utils.validation", "sklearn.utils.multiclass"}
STDLIB = {
    "__future__",
    "typing",
    "dataclasses",
    "numbers",
    "warnings",
    "math",
    "collections",
    "heapq",
    "itertools",
    "functools",
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module or "")
    return names


def test_every_module_imports_only_numpy_and_sklearn_plumbing():
    offenders = {}
    for path in sorted(ROOT.glob("*.py")):
        bad = [
            name
            for name in _imports(path)
            if name not in ALLOWED
            and name.split(".")[0] not in STDLIB
            and not name.startswith("scratch_models")
        ]
        if bad:
            offenders[path.name] = bad
    assert offenders == {}


def test_the_public_names_mirror_scikit_learn():
    import sklearn.cluster
    import sklearn.decomposition
    import sklearn.ensemble
    import sklearn.linear_model
    import sklearn.neighbors
    import sklearn.neural_network
    import sklearn.svm
    import sklearn.tree

    twins = [
        sklearn.linear_model,
        sklearn.tree,
        sklearn.ensemble,
        sklearn.neighbors,
        sklearn.neural_network,
        sklearn.cluster,
        sklearn.decomposition,
        sklearn.svm,
    ]
    for name in scratch_models.__all__:
        assert any(hasattr(module, name) for module in twins), name
