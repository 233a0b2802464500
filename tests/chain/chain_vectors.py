"""Real-chain vectors (tests/vectors/*_gbt.json), loaded once per session."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from stratumkit.chain.template import BlockTemplate

VECTORS_DIR = Path(__file__).resolve().parent.parent / "vectors"
VECTOR_FILES = sorted(VECTORS_DIR.glob("*_gbt.json"))


@dataclass(frozen=True)
class Vector:
    name: str
    template_json: dict[str, Any]
    expected: dict[str, Any]
    template: BlockTemplate

    @property
    def coinbase_nowitness(self) -> bytes:
        return bytes.fromhex(self.expected["real_coinbase_tx_nowitness_hex"])

    @property
    def coinbase_witness(self) -> bytes:
        return bytes.fromhex(self.expected["real_coinbase_tx_hex"])

    def header_field(self, name: str) -> int:
        """version / ntime / nbits / nonce as the integer the header serializes little-endian."""
        return int(self.expected[f"{name}_hex"], 16)


@cache
def load_vector(path: Path) -> Vector:
    raw = json.loads(path.read_text())
    return Vector(
        name=path.stem,
        template_json=raw["template"],
        expected=raw["expected"],
        template=BlockTemplate.from_gbt(raw["template"]),
    )
