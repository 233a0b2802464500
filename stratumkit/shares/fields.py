"""Strict parsing of the hex fields of mining.submit, with the exact widths the session allows.

Miners send lowercase or uppercase hex; we accept both and canonicalise to bytes/ints, so that
duplicate detection works on the work itself and never on the spelling a miner chose.
"""

from __future__ import annotations

_HEX = frozenset("0123456789abcdefABCDEF")


class FieldError(ValueError):
    """A submit field with the wrong width or a non-hex character (answered with error 20)."""


def hex_bytes(name: str, text: str, size: int) -> bytes:
    if len(text) != 2 * size or not _HEX.issuperset(text):
        raise FieldError(f"{name} must be {2 * size} hex digits, got {text[:24]!r}")
    return bytes.fromhex(text)


def hex_u32(name: str, text: str) -> int:
    """An 8-digit big-endian hex number, as ntime, nonce and version bits are sent."""
    if len(text) != 8 or not _HEX.issuperset(text):
        raise FieldError(f"{name} must be 8 hex digits, got {text[:24]!r}")
    return int(text, 16)
