from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratumkit.chain.errors import TemplateError
from stratumkit.chain.targets import nbits_to_target
from stratumkit.chain.template import (
    BlockTemplate,
    prevhash_from_stratum,
    stratum_prevhash,
)

from .chain_vectors import Vector


def _json(vector: Vector) -> dict[str, Any]:
    return copy.deepcopy(vector.template_json)


def test_parsed_fields(testnet_vector: Vector) -> None:
    raw = testnet_vector.template_json
    t = testnet_vector.template
    assert t.version == raw["version"]
    assert t.prevhash == bytes.fromhex(raw["previousblockhash"])[::-1]
    assert t.curtime == raw["curtime"] and t.mintime == raw["mintime"]
    assert t.nbits == int(raw["bits"], 16)
    assert t.network_target == nbits_to_target(raw["bits"])
    assert t.target is None  # the vector carries no `target`
    assert t.coinbaseaux == ()
    assert t.has_witness_commitment
    assert t.transactions[0].data == bytes.fromhex(raw["transactions"][0]["data"])
    assert t.merkle_branch_bytes == b"".join(t.merkle_branch)


def test_repr_stays_short(vector: Vector) -> None:
    # A 2,500-transaction template must not flood a log line or a test failure.
    assert len(repr(vector.template)) < 600


def test_optional_fields(testnet_vector: Vector) -> None:
    raw = _json(testnet_vector)
    raw["target"] = f"{nbits_to_target(raw['bits']):064x}"
    raw["coinbaseaux"] = {"flags": "062f503253482f", "a": ""}
    raw["longpollid"] = "anything"  # unknown keys are ignored
    t = BlockTemplate.from_gbt(raw)
    assert t.target == t.network_target
    assert t.coinbaseaux == (("a", b""), ("flags", bytes.fromhex("062f503253482f")))

    del raw["default_witness_commitment"]
    for tx in raw["transactions"]:
        del tx["hash"]  # a node without segwit may leave it out: wtxid = txid
    t = BlockTemplate.from_gbt(raw)
    assert t.default_witness_commitment is None and not t.has_witness_commitment
    assert t.wtxids == t.txids
    assert t.merkle_branch == testnet_vector.template.merkle_branch


@pytest.mark.parametrize(
    "field",
    [
        "version",
        "previousblockhash",
        "transactions",
        "coinbasevalue",
        "curtime",
        "mintime",
        "bits",
        "height",
    ],
)
def test_missing_field(testnet_vector: Vector, field: str) -> None:
    raw = _json(testnet_vector)
    del raw[field]
    with pytest.raises(TemplateError, match=f"missing field '{field}'"):
        BlockTemplate.from_gbt(raw)


MISTYPED = [
    ("version", "536870912", "must be int"),
    ("version", 5.0, "must be int"),
    ("version", True, "must be int"),
    ("version", -1, "out of range"),
    ("version", 2**32, "out of range"),
    ("height", None, "must be int"),
    ("height", 2**31, "out of range"),
    ("coinbasevalue", 21_000_000 * 100_000_000 + 1, "out of range"),
    ("curtime", 2**32, "out of range"),
    ("previousblockhash", 12, "must be str"),
    ("previousblockhash", "00" * 31, "32 bytes"),
    ("previousblockhash", "zz" * 32, "not hex"),
    ("previousblockhash", "00 " * 21 + "0", "not hex"),
    ("bits", 0x1A06D450, "must be str"),
    ("bits", "1a06d45", "not hex"),
    ("bits", "1a06d4", "4 bytes"),
    ("bits", "1a86d450", "negative"),
    ("transactions", {}, "must be list"),
    ("transactions", ["00"], r"transactions\[0\] must be an object"),
    ("default_witness_commitment", 1, "must be str"),
    ("default_witness_commitment", "6a24aa21a9ed" + "00" * 31, "not a BIP141"),
    ("default_witness_commitment", "6a24aa21a9ee" + "00" * 32, "not a BIP141"),
    ("coinbaseaux", [], "must be Mapping"),
    ("coinbaseaux", {"flags": 1}, "must be str"),
    ("coinbaseaux", {"flags": "0"}, "not hex"),
    ("target", "00" * 32, "disagrees with bits"),
    ("target", 5, "must be str"),
]


@pytest.mark.parametrize(("field", "value", "message"), MISTYPED)
def test_mistyped_field(testnet_vector: Vector, field: str, value: object, message: str) -> None:
    raw = _json(testnet_vector)
    raw[field] = value
    with pytest.raises(TemplateError, match=message):
        BlockTemplate.from_gbt(raw)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("data", "", "data is empty"),
        ("data", "0", "not hex"),
        ("data", None, "must be str"),
        ("txid", "00" * 33, "32 bytes"),
        ("hash", 7, "must be str"),
    ],
)
def test_bad_transaction_entry(testnet_vector: Vector, key: str, value: object, message: str) -> None:
    raw = _json(testnet_vector)
    raw["transactions"][3][key] = value
    with pytest.raises(TemplateError, match=message):
        BlockTemplate.from_gbt(raw)
    del raw["transactions"][3][key]
    if key != "hash":
        with pytest.raises(TemplateError, match=rf"missing field '{key}'"):
            BlockTemplate.from_gbt(raw)


def test_not_an_object() -> None:
    with pytest.raises(TemplateError, match="JSON object"):
        BlockTemplate.from_gbt([])  # type: ignore[arg-type]


def test_constructor_checks_and_derives(testnet_vector: Vector) -> None:
    t = testnet_vector.template
    # replace() reruns the checks and recomputes the derived fields.
    shorter = replace(t, transactions=t.transactions[:3])
    assert shorter.merkle_branch != t.merkle_branch
    assert len(shorter.merkle_branch) == 2
    with pytest.raises(TemplateError, match="prevhash must be 32 bytes"):
        replace(t, prevhash=bytes(31))
    with pytest.raises(TemplateError, match="bits"):
        replace(t, nbits=0)


def test_stratum_prevhash_word_order() -> None:
    prevhash = bytes(range(32))
    words = stratum_prevhash(prevhash)
    assert words.startswith("03020100" + "07060504")
    assert prevhash_from_stratum(words) == prevhash
    with pytest.raises(TemplateError):
        stratum_prevhash(bytes(31))
    with pytest.raises(TemplateError):
        prevhash_from_stratum("00" * 31)


@given(st.binary(min_size=32, max_size=32))
def test_stratum_prevhash_round_trip(prevhash: bytes) -> None:
    assert prevhash_from_stratum(stratum_prevhash(prevhash)) == prevhash
