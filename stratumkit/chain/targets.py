"""Targets, nbits and difficulty.

Rules:
- A target is a 256-bit int; a hash meets it when its little-endian value is <= target.
- nbits is Bitcoin's compact float: exponent in the top byte, a 23-bit mantissa and a sign bit.
  Negative, zero and overflowing encodings are refused (consensus treats them as invalid).
- Difficulty is the "bdiff" convention shared by pools and nodes: target = DIFF1_TARGET / diff,
  with DIFF1_TARGET = 0x00000000FFFF << 208. Fractional difficulty (0.001 for a CPU miner) works;
  the division is exact and the result is clamped to [1, MAX_TARGET].
"""

from __future__ import annotations

import math
from fractions import Fraction

from stratumkit.chain.errors import TargetError
from stratumkit.hashing import DIFF1_TARGET, MAX_TARGET, hash_to_int

__all__ = [
    "DIFF1_TARGET",
    "MAX_TARGET",
    "difficulty_to_target",
    "hash_difficulty",
    "nbits_to_target",
    "network_difficulty",
    "parse_nbits",
    "target_to_difficulty",
    "target_to_nbits",
]

_SIGN_BIT = 0x0080_0000
_MANTISSA = 0x007F_FFFF


def parse_nbits(nbits: int | str) -> int:
    """nbits as a uint32, from an int or the 8-hex-digit string getblocktemplate sends as `bits`."""
    if isinstance(nbits, str):
        if len(nbits) != 8:
            raise TargetError(f"nbits must be 8 hex digits, got {nbits!r}")
        try:
            return int(nbits, 16)
        except ValueError:
            raise TargetError(f"nbits is not hex: {nbits!r}") from None
    if not isinstance(nbits, int) or isinstance(nbits, bool):
        raise TargetError(f"nbits must be an int or hex string, not {type(nbits).__name__}")
    if not 0 <= nbits <= 0xFFFF_FFFF:
        raise TargetError(f"nbits out of range for uint32: {nbits}")
    return nbits


def nbits_to_target(nbits: int | str) -> int:
    """Expand compact nbits to the 256-bit target."""
    bits = parse_nbits(nbits)
    exponent = bits >> 24
    mantissa = bits & _MANTISSA
    if bits & _SIGN_BIT and mantissa:
        raise TargetError(f"nbits {bits:08x} encodes a negative target")
    if exponent <= 3:
        target = mantissa >> (8 * (3 - exponent))
    else:
        target = mantissa << (8 * (exponent - 3))
    if target == 0:
        raise TargetError(f"nbits {bits:08x} encodes a zero target")
    if target > MAX_TARGET:
        raise TargetError(f"nbits {bits:08x} overflows 256 bits")
    return target


def target_to_nbits(target: int) -> int:
    """Compress a target to nbits (Bitcoin's GetCompact): precision is lost past 3 bytes."""
    _check_target(target)
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        mantissa = target << (8 * (3 - size))
    else:
        mantissa = target >> (8 * (size - 3))
    if mantissa & _SIGN_BIT:
        # The mantissa's top bit would read as a sign: shift one byte into the exponent.
        mantissa >>= 8
        size += 1
    return (size << 24) | mantissa


def difficulty_to_target(difficulty: float | int | Fraction) -> int:
    """Share target for a pool difficulty: floor(DIFF1_TARGET / difficulty), clamped to [1, MAX]."""
    if isinstance(difficulty, bool) or not isinstance(difficulty, int | float | Fraction):
        raise TargetError(f"difficulty must be a number, not {type(difficulty).__name__}")
    if isinstance(difficulty, float) and not math.isfinite(difficulty):
        raise TargetError(f"difficulty must be finite, got {difficulty}")
    if difficulty <= 0:
        raise TargetError(f"difficulty must be positive, got {difficulty}")
    # Fraction(float) is the float's exact binary value: no rounding before the division.
    target = math.floor(Fraction(DIFF1_TARGET) / Fraction(difficulty))
    return max(1, min(target, MAX_TARGET))


def target_to_difficulty(target: int) -> float:
    """Difficulty of a target: DIFF1_TARGET / target (correctly rounded float)."""
    _check_target(target)
    return DIFF1_TARGET / target


def network_difficulty(nbits: int | str) -> float:
    """The difficulty a node's `getdifficulty` reports for these nbits.

    Computed as the node does, from the 24-bit mantissa and the exponent directly
    (0xffff / mantissa * 256**(29 - exponent)), so it agrees with the node even for encodings that
    `nbits_to_target` refuses; for valid nbits it is DIFF1_TARGET / target.
    """
    bits = parse_nbits(nbits)
    mantissa = bits & 0x00FF_FFFF
    if mantissa == 0:
        raise TargetError(f"nbits {bits:08x} has a zero mantissa")
    return float(Fraction(0xFFFF, mantissa) * Fraction(256) ** (29 - (bits >> 24)))


def hash_difficulty(digest: bytes) -> float:
    """The difficulty a hash (internal byte order) achieves: the largest it would meet."""
    if len(digest) != 32:
        raise TargetError(f"hash must be 32 bytes, got {len(digest)}")
    value = hash_to_int(digest)
    return math.inf if value == 0 else DIFF1_TARGET / value


def _check_target(target: int) -> None:
    if not isinstance(target, int) or isinstance(target, bool):
        raise TargetError(f"target must be an int, not {type(target).__name__}")
    if not 1 <= target <= MAX_TARGET:
        raise TargetError(f"target out of range [1, 2**256 - 1]: {target}")
