"""Submit field parsing (exact widths, either hex case) and extranonce1 allocation."""

from __future__ import annotations

import pytest

from stratumkit.jobs.extranonce import ExtranonceAllocator, ExtranonceExhausted
from stratumkit.shares.fields import FieldError, hex_bytes, hex_u32

# ------------------------------------------------------------------------------------ fields


def test_hex_bytes_takes_exactly_the_width_in_either_case() -> None:
    assert hex_bytes("extranonce2", "00ff10ab", 4) == b"\x00\xff\x10\xab"
    assert hex_bytes("extranonce2", "00FF10AB", 4) == hex_bytes("extranonce2", "00ff10ab", 4)
    assert hex_bytes("extranonce2", "aBcD", 2) == b"\xab\xcd"


@pytest.mark.parametrize(
    "text",
    [
        "00ff10",
        "00ff10ab00",
        "",
        "00ff10a",
        "00fg10ab",
        "0x0f10ab",
        " 0ff10ab",
        "00ff 0ab",
        "00ff10a\n",
        "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",
    ],
)
def test_hex_bytes_refuses_other_widths_and_non_hex(text: str) -> None:
    with pytest.raises(FieldError, match="extranonce2 must be 8 hex digits"):
        hex_bytes("extranonce2", text, 4)


def test_hex_u32_is_big_endian_and_case_blind() -> None:
    assert hex_u32("nonce", "00000001") == 1
    assert hex_u32("nonce", "FFFFFFFF") == hex_u32("nonce", "ffffffff") == 0xFFFFFFFF
    assert hex_u32("ntime", "5f5e1000") == 0x5F5E1000


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "0000001",
        "000000001",
        "-0000001",
        "+0000001",
        "0000000x",
        "0x000001",
        "        ",
        "1_000000",
    ],
)
def test_hex_u32_refuses_anything_but_eight_hex_digits(text: str) -> None:
    with pytest.raises(FieldError, match="nonce must be 8 hex digits"):
        hex_u32("nonce", text)


def test_field_error_is_a_value_error_and_clips_long_input() -> None:
    with pytest.raises(ValueError) as info:
        hex_u32("ntime", "z" * 10_000)
    assert len(str(info.value)) < 100


# ------------------------------------------------------------------------------- extranonce


def test_allocations_are_unique_and_carry_the_instance_prefix() -> None:
    alloc = ExtranonceAllocator(size=4, prefix=7)
    values = [alloc.allocate() for _ in range(1000)]
    assert len(set(values)) == 1000
    assert all(len(v) == 4 and v[0] == 7 for v in values)
    assert len(alloc) == 1000


def test_two_instances_never_share_an_extranonce1() -> None:
    a = ExtranonceAllocator(size=4, prefix=1)
    b = ExtranonceAllocator(size=4, prefix=2)
    assert not {a.allocate() for _ in range(300)} & {b.allocate() for _ in range(300)}


def test_resume_by_session_id_returns_the_same_extranonce1_when_free() -> None:
    alloc = ExtranonceAllocator(size=4, prefix=3)
    first = alloc.allocate()
    alloc.allocate()
    alloc.release(first)
    assert alloc.allocate(first.hex()) == first
    assert alloc.allocate(first.hex().upper()) != first  # taken now: a fresh one instead


def test_resume_is_refused_for_ids_that_are_not_ours() -> None:
    alloc = ExtranonceAllocator(size=4, prefix=3)
    held = alloc.allocate()
    for session_id in [held.hex(), "09000001", "030000", "0300000001", "not hex!", ""]:
        value = alloc.allocate(session_id)
        assert value != held and value[0] == 3
    assert len(alloc) == 7


def test_release_makes_a_value_reusable() -> None:
    alloc = ExtranonceAllocator(size=2, prefix=0)
    values = [alloc.allocate() for _ in range(256)]
    alloc.release(values[17])
    alloc.release(values[17])  # twice is harmless
    assert alloc.allocate() == values[17]
    assert len(alloc) == 256


def test_exhaustion_raises_a_typed_error_and_recovers_after_a_release() -> None:
    alloc = ExtranonceAllocator(size=2, prefix=9)  # one counter byte: 256 values
    values = {alloc.allocate() for _ in range(256)}
    assert len(values) == 256
    with pytest.raises(ExtranonceExhausted):
        alloc.allocate()
    alloc.release(b"\x09\x05")
    assert alloc.allocate() == b"\x09\x05"


@pytest.mark.parametrize(
    "kwargs",
    [dict(prefix=256), dict(prefix=-1), dict(size=1, prefix_bytes=1), dict(size=4, prefix_bytes=4)],
)
def test_bad_allocator_arguments_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ExtranonceAllocator(**kwargs)
