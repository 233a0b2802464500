"""Fixtures over the real-chain vectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from .chain_vectors import VECTOR_FILES, VECTORS_DIR, Vector, load_vector


@pytest.fixture(params=VECTOR_FILES, ids=lambda p: p.stem)
def vector(request: pytest.FixtureRequest) -> Vector:
    path: Path = request.param
    return load_vector(path)


@pytest.fixture
def testnet_vector() -> Vector:
    return load_vector(VECTORS_DIR / "testnet_924634_gbt.json")
