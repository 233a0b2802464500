from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratumkit.protocol import ErrorCode, RemoteProtocolError
from stratumkit.protocol.jsonrpc import (
    MalformedJSON,
    as_difficulty,
    decode_line,
    encode_difficulty,
    encode_id,
    encode_str,
    error_fields,
    is_request_id,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1024.0, "1024"),
        (1024, "1024"),
        (1.0, "1"),
        (1.5, "1.5"),
        (0.001, "0.001"),
        (0.0001, "0.0001"),
        (1e-05, "0.00001"),
        (2.5e-08, "0.000000025"),
        (123456.789, "123456.789"),
        (2.0**53 - 1, "9007199254740991"),
        (2.0**60, "1152921504606846976.0"),
        (1e20, "100000000000000000000.0"),
    ],
)
def test_difficulty_text(value: float, text: str) -> None:
    assert encode_difficulty(float(value)) == text


@settings(max_examples=300, deadline=None, database=None)
@given(st.floats(min_value=1e-12, max_value=1e30, allow_nan=False, allow_infinity=False))
def test_difficulty_text_round_trips_without_exponent(value: float) -> None:
    text = encode_difficulty(value)
    assert "e" not in text.lower()
    assert json.loads(text) == value
    if value.is_integer() and value < 2.0**53:
        assert "." not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (0.5, 0.5),
        (0, None),
        (-1, None),
        (True, None),
        ("1", None),
        (None, None),
        (float("inf"), None),
        (float("nan"), None),
        (10**400, None),
    ],
)
def test_as_difficulty(value: object, expected: float | None) -> None:
    assert as_difficulty(value) == expected


def test_decode_accepts_surrounding_json_whitespace() -> None:
    assert decode_line(b' \t{"id": 1} \t\r') == {"id": 1}


@pytest.mark.parametrize(
    "line",
    [
        b"{",
        b"nope",
        b'{"id": 1} {"id": 2}',
        b'{"id": 1}]',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b"[" * 50_000,
        b"9" * 5_000,  # beyond the int digit limit
    ],
)
def test_malformed_json_is_recoverable(line: bytes) -> None:
    with pytest.raises(MalformedJSON):
        decode_line(line)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        (b'{"id":1,"method":"mining.submit","method":"mining.subscribe","params":["x"]}', "method"),
        (b'{"id": 1, "id": 1}', "id"),
        (b'{"a": 1, "\\u0061": 2}', "a"),  # the same key, spelled twice
        (b'{"id": 1, "params": [[], {"x": 1, "y": 2, "x": 3}]}', "x"),
        (b'[{"a": 1}, {"b": 1, "b": 1}]', "b"),
        (b'{"a": {"b": {"c": {"d": 1, "d": 2}}}}', "d"),
        (b'{"a":"x","a" : "y"}', "a"),
        (b'{"s": "::::::::", "k": 1, "k": 2}', "k"),  # colons in strings do not hide it
    ],
)
def test_duplicate_keys_are_refused_at_any_depth(line: bytes, key: str) -> None:
    with pytest.raises(MalformedJSON, match=f"^duplicate key '{key}'$"):
        decode_line(line)


@pytest.mark.parametrize(
    "line",
    [
        b'{"id": 1, "method": "x", "params": ["a:b", "::", "\\":"]}',  # colons inside strings
        b'{"id" : 1, "method"\t:"x"}',  # space before the colon
        b'{"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 2}]}',  # the same key in different objects
        b'{"a": 1, "A": 2, "a ": 3}',
        b'[":", {"x": ":"}]',
    ],
)
def test_lines_without_a_repeated_key_are_never_refused(line: bytes) -> None:
    assert decode_line(line) == json.loads(line)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(alphabet=':"\\ ab{}[],'),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet=':"ab ', max_size=3), inner),
        max_leaves=12,
    )
)
def test_duplicate_check_matches_a_reference(value: object) -> None:
    """Whatever colons the strings hold, a line with unique keys decodes as json.loads does."""
    line = json.dumps(value).encode()
    assert decode_line(line) == value


_KEYS = st.text(alphabet=':"ab ', max_size=2)
_VALUES = st.none() | st.integers() | st.text(alphabet=':"a ', max_size=3)


def _object_text(pairs: list[tuple[str, Any]]) -> str:
    return "{" + ",".join(f"{json.dumps(key)}{' ' if len(key) % 2 else ''}:{value}" for key, value in pairs) + "}"


@settings(max_examples=400, deadline=None, database=None)
@given(
    st.lists(st.tuples(_KEYS, _VALUES.map(json.dumps)), max_size=5),
    st.lists(st.tuples(_KEYS, _VALUES.map(json.dumps)), max_size=5),
)
def test_refused_exactly_when_some_object_repeats_a_key(
    outer: list[tuple[str, Any]], inner: list[tuple[str, Any]]
) -> None:
    line = _object_text([*outer, ("nested", f"[{_object_text(inner)}]")]).encode()
    repeats = any(len({key for key, _ in pairs}) < len(pairs) for pairs in ([*outer, ("nested", "")], inner))
    if repeats:
        with pytest.raises(MalformedJSON, match=r"^duplicate key"):
            decode_line(line)
    else:
        assert decode_line(line) == json.loads(line)


@pytest.mark.parametrize(
    "line",
    [
        b"\xff\xfe{}",  # not UTF-8
        b'{"id": 1, "method": "\x00"}',  # raw control byte inside a string
        b"\x16\x03\x01\x02\x00",  # a TLS record header
        b'{"id": 1}\x01',
    ],
)
def test_binary_data_is_fatal(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="binary data"):
        decode_line(line)


def test_lone_surrogate_escapes_decode_and_echo_as_valid_json() -> None:
    value = decode_line(b'{"id": "\\ud800"}')["id"]
    assert json.loads(encode_id(value)) == value
    assert encode_id(value).isascii()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (4, "4"),
        (0, "0"),
        (-3, "-3"),
        (2**70, str(2**70)),
        (None, "null"),
        ("a1", '"a1"'),
        ('q"uote', '"q\\"uote"'),
        ("é", '"\\u00e9"'),
        ("tab\t", '"tab\\t"'),
    ],
)
def test_encode_id(value: int | str | None, text: str) -> None:
    assert encode_id(value) == text
    assert json.loads(text) == value


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
def test_encode_str_is_json(value: str) -> None:
    text = encode_str(value)
    assert text.isascii()
    assert json.loads(text) == value


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), ("1", True), (None, True), (True, False), (1.0, False), ([1], False), ({}, False)],
)
def test_is_request_id(value: object, ok: bool) -> None:
    assert is_request_id(value) is ok


@pytest.mark.parametrize(
    ("error", "fields"),
    [
        ([21, "Job not found", None], (21, "Job not found")),
        ([23, "Low difficulty share"], (23, "Low difficulty share")),
        ({"code": 24, "message": "Unauthorized worker"}, (24, "Unauthorized worker")),
        ("Stale", (20, "Stale")),
        ([], (20, "[]")),
        (["x", "y"], (20, "y")),
        (True, (20, "true")),
        ([22, {"why": 1}], (22, '{"why":1}')),
    ],
)
def test_error_fields(error: object, fields: tuple[int, str]) -> None:
    assert error_fields(error) == fields


def test_error_codes() -> None:
    assert [int(code) for code in ErrorCode] == [20, 21, 22, 23, 24, 25]
    assert ErrorCode.JOB_NOT_FOUND.default_message == "Job not found"
    assert ErrorCode.NOT_SUBSCRIBED.default_message == "Not subscribed"
