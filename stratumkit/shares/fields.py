"""Strict parsing of the hex fields of mining.submit, with the exact widths the session allows.

Miners send lowercase or uppercase hex; we accept both and canonicalise to bytes/ints, so that
duplicate detection works on the work itself and never on the spelling a miner chose.
"""

from __future__ import annotations


class FieldError(ValueError):
    """A submit field with the wrong width or a non-hex character (answered with error 20)."""


def hex_bytes(name: str, text: str, size: int) -> bytes:
    # fromhex takes only ASCII hex digits and whitespace between pairs: with exactly 2 * size
    # characters in and size bytes out, there was no whitespace.
    if len(text) == 2 * size:
        try:
            value = bytes.fromhex(text)
        except ValueError:
            pass
        else:
            if len(value) == size:
                return value
    raise FieldError(f"{name} must be {2 * size} hex digits, got {text[:24]!r}")


def hex_u32(name: str, text: str) -> int:
    """An 8-digit big-endian hex number, as ntime, nonce and version bits are sent."""
    return int.from_bytes(hex_bytes(name, text, 4))
