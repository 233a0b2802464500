from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratumkit.chain.errors import SerializationError
from stratumkit.chain.serialize import (
    ByteReader,
    compact_size,
    decode_script_number,
    push_data,
    push_height,
    push_int,
    read_height_push,
    script_number,
    u32le,
    u64le,
)
from stratumkit.chain.transaction import parse_transaction

from .chain_vectors import Vector

# -- integers and compact sizes -----------------------------------------------------------------

COMPACT_SIZES = [
    (0, "00"),
    (0xFC, "fc"),
    (0xFD, "fdfd00"),
    (0xFFFF, "fdffff"),
    (0x10000, "fe00000100"),
    (0xFFFF_FFFF, "feffffffff"),
    (0x1_0000_0000, "ff0000000001000000"),
    (2**64 - 1, "ffffffffffffffffff"),
]


@pytest.mark.parametrize(("n", "encoded"), COMPACT_SIZES)
def test_compact_size_boundaries(n: int, encoded: str) -> None:
    assert compact_size(n).hex() == encoded
    reader = ByteReader(bytes.fromhex(encoded))
    assert reader.compact_size() == n
    reader.finish()


@pytest.mark.parametrize("encoded", ["fdfc00", "feffff0000", "ffffffffff00000000"])
def test_non_canonical_compact_size_is_refused(encoded: str) -> None:
    with pytest.raises(SerializationError, match="non-canonical"):
        ByteReader(bytes.fromhex(encoded)).compact_size()


@pytest.mark.parametrize("n", [-1, 2**64, True])
def test_compact_size_out_of_range(n: int) -> None:
    with pytest.raises(SerializationError):
        compact_size(n)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_compact_size_round_trip(n: int) -> None:
    reader = ByteReader(compact_size(n) + b"tail")
    assert reader.compact_size() == n
    assert reader.read(4) == b"tail"
    reader.finish()


def test_little_endian_integers() -> None:
    assert u32le(1) == b"\x01\x00\x00\x00"
    assert u32le(0x20000000).hex() == "00000020"
    assert u64le(0x0102030405060708).hex() == "0807060504030201"
    reader = ByteReader(u32le(0xDEADBEEF) + u64le(2**64 - 1))
    assert reader.u32() == 0xDEADBEEF
    assert reader.u64() == 2**64 - 1
    reader.finish()
    for bad in (-1, 2**32):
        with pytest.raises(SerializationError):
            u32le(bad)
    with pytest.raises(SerializationError):
        u64le(2**64)


def test_reader_is_strict() -> None:
    reader = ByteReader(b"\x01\x02\x03")
    with pytest.raises(SerializationError, match="need 4 bytes"):
        reader.u32()
    assert reader.read(2) == b"\x01\x02"
    with pytest.raises(SerializationError, match="1 trailing"):
        reader.finish()
    with pytest.raises(SerializationError, match="need 2 bytes"):
        ByteReader(b"\xfd\x01").compact_size()
    with pytest.raises(SerializationError, match="need 5 bytes"):
        ByteReader(b"\x05abc").var_bytes()


# -- script numbers and pushes ------------------------------------------------------------------

SCRIPT_NUMBERS = [
    (0, ""),
    (1, "01"),
    (16, "10"),
    (127, "7f"),
    (128, "8000"),
    (255, "ff00"),
    (256, "0001"),
    (32767, "ff7f"),
    (32768, "008000"),
    (-1, "81"),
    (-127, "ff"),
    (-128, "8080"),
    (-255, "ff80"),
    (-32768, "008080"),
]


@pytest.mark.parametrize(("n", "encoded"), SCRIPT_NUMBERS)
def test_script_number_encoding(n: int, encoded: str) -> None:
    assert script_number(n).hex() == encoded
    assert decode_script_number(bytes.fromhex(encoded)) == n


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_script_number_round_trip(n: int) -> None:
    assert decode_script_number(script_number(n)) == n


@pytest.mark.parametrize("encoded", ["00", "80", "0100", "0180", "ff0000"])
def test_non_minimal_script_number_is_refused(encoded: str) -> None:
    with pytest.raises(SerializationError, match="non-minimal"):
        decode_script_number(bytes.fromhex(encoded))


PUSHES = [
    (b"", "00"),
    (b"\x01", "51"),
    (b"\x10", "60"),
    (b"\x11", "0111"),
    (b"\x00", "0100"),
    (b"\x81", "4f"),
    (b"\xab" * 75, "4b" + "ab" * 75),
    (b"\xab" * 76, "4c4c" + "ab" * 76),
    (b"\xab" * 255, "4cff" + "ab" * 255),
    (b"\xab" * 256, "4d0001" + "ab" * 256),
]


@pytest.mark.parametrize(("data", "encoded"), PUSHES)
def test_minimal_push(data: bytes, encoded: str) -> None:
    assert push_data(data).hex() == encoded


def test_push_limit() -> None:
    assert len(push_data(bytes(520))) == 523
    with pytest.raises(SerializationError, match="520"):
        push_data(bytes(521))


@pytest.mark.parametrize(("n", "encoded"), [(0, "00"), (-1, "4f"), (1, "51"), (16, "60"), (17, "0111"), (-2, "0182")])
def test_push_int(n: int, encoded: str) -> None:
    assert push_int(n).hex() == encoded


# -- BIP34 heights ------------------------------------------------------------------------------

HEIGHTS = [
    (1, "51"),  # OP_1: `CScript() << 1`, not a one-byte push
    (16, "60"),  # OP_16
    (17, "0111"),
    (127, "017f"),
    (128, "028000"),  # sign byte: 0x80 alone would read as -0
    (255, "02ff00"),
    (256, "020001"),
    (32768, "03008000"),
    (227931, "035b7a03"),  # the block where BIP34 took effect on mainnet
    (8388608, "0400008000"),
]


@pytest.mark.parametrize(("height", "encoded"), HEIGHTS)
def test_bip34_height_push(height: int, encoded: str) -> None:
    assert push_height(height).hex() == encoded
    assert read_height_push(bytes.fromhex(encoded) + b"\x04tail") == height


def test_height_push_of_real_coinbases(vector: Vector) -> None:
    tx = parse_transaction(vector.coinbase_nowitness)
    script_sig = tx.inputs[0].script_sig
    assert script_sig.startswith(push_height(vector.template.height))
    assert read_height_push(script_sig) == vector.template.height


@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_height_push_round_trip(height: int) -> None:
    assert read_height_push(push_height(height)) == height


@pytest.mark.parametrize(
    "script_sig",
    [b"", b"\x01\x01", b"\x02\x05\x00", b"\x03\x01\x02", b"\x4c\x01\x01", b"\x01\x81"],
    ids=["empty", "one-as-push", "non-minimal", "truncated", "pushdata1", "negative"],
)
def test_bad_height_push_is_refused(script_sig: bytes) -> None:
    with pytest.raises(SerializationError):
        read_height_push(script_sig)


@pytest.mark.parametrize("height", [-1, 2**31, True])
def test_height_out_of_range(height: int) -> None:
    with pytest.raises(SerializationError):
        push_height(height)
