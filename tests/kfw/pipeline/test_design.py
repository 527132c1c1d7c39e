"""The feature module's source hash: what decides whether an interrupted run may resume."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import features.auto
from kfw.pipeline.design import _source_hash


def _load(path: Path, source: str):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sha(*files: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def test_a_self_contained_module_hashes_its_own_source(tmp_path):
    module = _load(
        tmp_path / "plain.py", "import pandas as pd\n\ndef row_features(df):\n    return df\n"
    )
    assert _source_hash(module) == _sha(tmp_path / "plain.py")


def test_a_generated_module_hashes_the_helpers_it_builds_on(tmp_path):
    """`kfw new` writes two lines over features.auto: editing features/auto.py must count."""
    source = "from features.auto import AutoFeatures\n\nAUTO = AutoFeatures({'numeric': ['x']}, id_column='id')\n"
    module = _load(tmp_path / "generated.py", source)
    auto = Path(features.auto.__file__)
    assert _source_hash(module) == _sha(tmp_path / "generated.py", auto)
    assert _source_hash(module) != _sha(tmp_path / "generated.py")
