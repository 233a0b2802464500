from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratumkit.chain.errors import TargetError
from stratumkit.chain.targets import (
    DIFF1_TARGET,
    MAX_TARGET,
    difficulty_to_target,
    hash_difficulty,
    nbits_to_target,
    network_difficulty,
    parse_nbits,
    target_to_difficulty,
    target_to_nbits,
)
from stratumkit.hashing import hash_to_int

from .chain_vectors import Vector


def test_difficulty_one() -> None:
    assert DIFF1_TARGET == 0x00000000FFFF0000000000000000000000000000000000000000000000000000
    assert difficulty_to_target(1) == DIFF1_TARGET
    assert difficulty_to_target(1.0) == DIFF1_TARGET
    assert target_to_difficulty(DIFF1_TARGET) == 1.0
    # The genesis block's nbits is difficulty 1 too.
    assert nbits_to_target(0x1D00FFFF) == DIFF1_TARGET
    assert nbits_to_target("1d00ffff") == DIFF1_TARGET
    assert target_to_nbits(DIFF1_TARGET) == 0x1D00FFFF
    assert network_difficulty("1d00ffff") == 1.0


# (nbits, target) pairs from Bitcoin Core's arith_uint256 tests.
COMPACT = [
    (0x01123456, 0x12, 0x01120000),
    (0x02123456, 0x1234, 0x02123400),
    (0x03123456, 0x123456, 0x03123456),
    (0x04123456, 0x12345600, 0x04123456),
    (0x05009234, 0x92340000, 0x05009234),
    (0x20123456, 0x123456 << 232, 0x20123456),
]


@pytest.mark.parametrize(("nbits", "target", "canonical"), COMPACT)
def test_compact_encoding(nbits: int, target: int, canonical: int) -> None:
    assert nbits_to_target(nbits) == target
    assert target_to_nbits(target) == canonical


def test_compact_never_sets_the_sign_bit() -> None:
    assert target_to_nbits(0x80) == 0x02008000


@pytest.mark.parametrize(
    ("nbits", "reason"),
    [
        (0x04923456, "negative"),
        (0x01FEDCBA, "negative"),
        (0xFF123456, "overflows"),
        (0x21010000, "overflows"),
        (0x00123456, "zero"),
        (0x01003456, "zero"),
        ("1d00fff", "8 hex"),
        ("1d00fffg", "not hex"),
        (-1, "range"),
        (2**32, "range"),
    ],
)
def test_bad_nbits(nbits: int | str, reason: str) -> None:
    with pytest.raises(TargetError, match=reason):
        nbits_to_target(nbits)


@pytest.mark.parametrize("nbits", [True, 1.5, b"1d00ffff"])
def test_nbits_type(nbits: object) -> None:
    with pytest.raises(TargetError, match="int or hex"):
        parse_nbits(nbits)  # type: ignore[arg-type]


# GetDifficulty() expectations from Bitcoin Core's blockchain tests (6 decimals). Their mantissas
# have the sign bit set, which the node's difficulty formula ignores and so must we.
@pytest.mark.parametrize(
    ("nbits", "difficulty"),
    [
        (0x1F111111, 0.000001),
        (0x1EF88F6F, 0.000016),
        (0x1DF88F6F, 0.004023),
        (0x1CF88F6F, 1.029916),
    ],
)
def test_network_difficulty_matches_node(nbits: int, difficulty: float) -> None:
    assert network_difficulty(nbits) == pytest.approx(difficulty, abs=1e-5)


def test_network_difficulty_very_high_target() -> None:
    assert network_difficulty(0x12345678) == pytest.approx(5913134931067755359633408.0, rel=1e-12)


def test_network_difficulty_is_diff1_over_target_for_valid_nbits(vector: Vector) -> None:
    nbits = vector.expected["nbits_hex"]
    assert network_difficulty(nbits) == pytest.approx(DIFF1_TARGET / nbits_to_target(nbits), rel=1e-15)
    with pytest.raises(TargetError, match="zero mantissa"):
        network_difficulty(0x1D000000)


def test_real_blocks_meet_their_nbits(vector: Vector) -> None:
    target = nbits_to_target(vector.expected["nbits_hex"])
    assert target == vector.template.network_target
    assert target_to_nbits(target) == int(vector.expected["nbits_hex"], 16)
    block_hash = bytes.fromhex(vector.expected["block_hash"])[::-1]
    assert hash_to_int(block_hash) <= target
    assert hash_difficulty(block_hash) >= network_difficulty(vector.expected["nbits_hex"])


def test_fractional_difficulty() -> None:
    # 0.001 has no exact binary form: the target is DIFF1 * 1000 up to float precision.
    target = difficulty_to_target(0.001)
    assert abs(target - DIFF1_TARGET * 1000) <= (DIFF1_TARGET * 1000) >> 50
    assert difficulty_to_target(Fraction(1, 1000)) == DIFF1_TARGET * 1000
    assert difficulty_to_target(0.5) == DIFF1_TARGET * 2
    assert difficulty_to_target(3) == DIFF1_TARGET // 3
    assert target_to_difficulty(difficulty_to_target(0.001)) == pytest.approx(0.001, rel=1e-12)


def test_difficulty_is_clamped() -> None:
    assert difficulty_to_target(1e-300) == MAX_TARGET
    assert difficulty_to_target(2**-32) == DIFF1_TARGET << 32  # still below 2**256
    assert difficulty_to_target(2**-33) == MAX_TARGET
    assert difficulty_to_target(1e80) == 1


@pytest.mark.parametrize("difficulty", [0, -1, -0.5, math.nan, math.inf, True, "1", None])
def test_bad_difficulty(difficulty: object) -> None:
    with pytest.raises(TargetError):
        difficulty_to_target(difficulty)  # type: ignore[arg-type]


@pytest.mark.parametrize("target", [0, -1, MAX_TARGET + 1, True])
def test_bad_target(target: int) -> None:
    with pytest.raises(TargetError):
        target_to_difficulty(target)
    with pytest.raises(TargetError):
        target_to_nbits(target)


@given(st.floats(min_value=1e-9, max_value=1e15, allow_nan=False, allow_infinity=False))
def test_difficulty_round_trip(difficulty: float) -> None:
    target = difficulty_to_target(difficulty)
    assert target_to_difficulty(target) == pytest.approx(difficulty, rel=1e-12)
    # A larger difficulty never gives a larger (easier) target.
    assert difficulty_to_target(difficulty * 2) <= target


@given(st.integers(min_value=1, max_value=MAX_TARGET))
def test_compact_round_trip(target: int) -> None:
    nbits = target_to_nbits(target)
    assert nbits & 0x0080_0000 == 0
    back = nbits_to_target(nbits)
    # Compact keeps the top 2-3 significant bytes and truncates the rest.
    assert back <= target
    assert target - back < max(1, target >> 15)
    assert target_to_nbits(back) == nbits


def test_hash_difficulty() -> None:
    assert hash_difficulty(DIFF1_TARGET.to_bytes(32, "little")) == 1.0
    assert hash_difficulty(bytes(32)) == math.inf
    with pytest.raises(TargetError):
        hash_difficulty(bytes(31))
