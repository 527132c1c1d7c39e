"""Fixtures shared by the language-model tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~8,000 characters of words from a small lexicon: enough structure to learn quickly."""
    rng = np.random.default_rng(0)
    words = ["the", "king", "queen", "shall", "speak", "my", "lord", "and", "thou", "art"]
    lines = [" ".join(rng.choice(words, size=8)).capitalize() + "." for _ in range(200)]
    path = tmp_path_factory.mktemp("corpus") / "words.txt"
    path.write_text("\n".join(lines) + "\n")
    return path
