"""Address decoding against published vectors.

Sources: BIP173 and BIP350 (bech32/bech32m strings and segwit addresses), Bitcoin Core's
src/test/data/key_io_valid.json (Base58 and segwit addresses per chain, with scriptPubKeys), and
the genesis coinbase's well-known address.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratumkit.chain.address import (
    Address,
    AddressKind,
    Bech32Encoding,
    Network,
    address_to_script,
    bech32_decode,
    bech32_encode,
    decode_address,
    decode_segwit_address,
    encode_segwit_address,
    script_to_address,
)
from stratumkit.chain.errors import AddressError
from stratumkit.hashing import sha256d

M, T, R = Network.MAINNET, Network.TESTNET, Network.REGTEST

VALID = [
    # The genesis coinbase pays 04678afd...; its hash160 is 62e907b1...
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", M, "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac"),
    ("1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mo", M, "76a914a31c06bd463e3923bc1aadbde48b16976c08071788ac"),
    ("36j4NfKv6Akva9amjWrLG6MuSQym1GuEmm", M, "a914373b819a068f32b7a6b38b6b38729647cfde01c287"),
    ("mzK2FFDEhxqHcmrJw1ysqFkVyhUULo45hZ", T, "76a914ce28b26c57472737f5c3561a1761185bd8589a4388ac"),
    ("2NC2hEhe28ULKAJkW5MjZ3jtTMJdvXmByvK", T, "a914ce0bba75891ff9ec60148d4bd4a09ee2dc5c933187"),
    ("mww4LvqtTMKvmeQvizPz2EQv26xTneWrbg", T, "76a914b4110ba93ac54afc14da3bdd19614774a2d55d2988ac"),
    ("n4fajahJrAuKbN7uNsKjLjQkz9Qn5ewJXQ", R, "76a914fdeca3b08e38af53d7c4c60e3ad208ce5066441088ac"),
    ("2MxFajLApXpYk4VodBSZSt7rw8y4ryABkfA", R, "a91436e9f191e0b75036a77f65e2eaa4752443233fbe87"),
    (
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        M,
        "0014751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        T,
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        T,
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        T,
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        M,
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
    (
        "bc1qvyq0cc6rahyvsazfdje0twl7ez82ndmuac2lhv",
        M,
        "00146100fc6343edc8c874496cb2f5bbfec88ea9b77c",
    ),
    (
        "bc1qyucykdlhp62tezs0hagqury402qwhk589q80tqs5myh3rxq34nwqhkdhv7",
        M,
        "002027304b37f70e94bc8a0fbf500e0c957a80ebda87280ef58214d92f119811acdc",
    ),
    (
        "bc1p83n3au0rjylefxq2nc2xh2y4jzz4pm6zxj4mw5pagdjjr2a9f36s6jjnnu",
        M,
        "51203c671ef1e3913f94980a9e146ba895908550ef4234abb7503d436521aba54c75",
    ),
    (
        "tb1q3vya2h5435jkugq2few7dmktlrwq4ejmfaw7kr",
        T,
        "00148b09d55e958d256e200a4e5de6eecbf8dc0ae65b",
    ),
    (
        "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9",
        R,
        "00146f58bac9506f9bfb821d62e69330410bb56f0085",
    ),
    (
        "bcrt1qan8gntac7z7me2ejt4hpru42ad2f759fmy0m3ejvs98656znv7eqga4uhv",
        R,
        "0020ecce89afb8f0bdbcab325d6e11f2aaeb549f50a9d91fb8e64c814faa685367b2",
    ),
    (
        "bcrt1pfwxjqvtt4tcxrtdluukfmy2dv7xd2qzdfy6kajv5nwn4yam3wxkq3553uh",
        R,
        "51204b8d20316baaf061adbfe72c9d914d678cd5004d49356ec9949ba752777171ac",
    ),
]


@pytest.mark.parametrize(("address", "network", "script"), VALID)
def test_valid_address(address: str, network: Network, script: str) -> None:
    assert address_to_script(address, network).hex() == script
    decoded = decode_address(address, network)
    # Encoding gives the canonical (lower-case for bech32) form back.
    expected = address.lower() if decoded.kind not in (AddressKind.P2PKH, AddressKind.P2SH) else address
    assert decoded.encode() == expected
    assert script_to_address(bytes.fromhex(script), network) == expected


def test_kinds() -> None:
    kinds = {decode_address(a, n).kind for a, n, _ in VALID}
    assert kinds == set(AddressKind)


def test_base58_testnet_addresses_work_on_regtest_and_back() -> None:
    # Testnet, signet and regtest share Base58 versions, so these decode on either.
    for address in ("mzK2FFDEhxqHcmrJw1ysqFkVyhUULo45hZ", "2MxFajLApXpYk4VodBSZSt7rw8y4ryABkfA"):
        assert address_to_script(address, T) == address_to_script(address, R)


WRONG_NETWORK = [
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", T, "for mainnet"),
    ("36j4NfKv6Akva9amjWrLG6MuSQym1GuEmm", R, "for mainnet"),
    ("mzK2FFDEhxqHcmrJw1ysqFkVyhUULo45hZ", M, "for testnet"),
    ("bc1qvyq0cc6rahyvsazfdje0twl7ez82ndmuac2lhv", T, "for mainnet"),
    ("tb1q3vya2h5435jkugq2few7dmktlrwq4ejmfaw7kr", M, "for testnet"),
    ("tb1q3vya2h5435jkugq2few7dmktlrwq4ejmfaw7kr", R, "for testnet"),
    ("bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9", M, "for regtest"),
]


@pytest.mark.parametrize(("address", "network", "message"), WRONG_NETWORK)
def test_wrong_network(address: str, network: Network, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        address_to_script(address, network)


# BIP350's invalid segwit addresses, each with the reason the BIP gives.
INVALID = [
    ("tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut", M, "prefix 'tc'"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", M, "must use bech32m"),
    ("tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf", T, "must use bech32m"),
    ("BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL", M, "must use bech32m"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh", M, "must use bech32,"),
    ("tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47", T, "must use bech32,"),
    ("bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4", M, "data character"),
    ("BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", M, "witness version"),
    ("bc1pw5dgrnzv", M, "program length 1"),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
        M,
        "program length 41",
    ),
    ("BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P", M, "v0 program must be 20 or 32"),
    ("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq", T, "mixes upper and lower"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf", M, "more than 4 bits"),
    ("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j", T, "non-zero padding"),
    ("bc1gmk9yu", M, "no data"),
]


@pytest.mark.parametrize(("address", "network", "message"), INVALID)
def test_invalid_segwit_address(address: str, network: Network, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        address_to_script(address, network)


# BIP350-valid addresses a pool must still refuse: it cannot know how to spend them.
@pytest.mark.parametrize(
    ("address", "script"),
    [
        (
            "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
            "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
        ),
        ("BC1SW50QGDZ25J", "6002751e"),
        ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
        ("bc1z2rksukkjr8", "520250ed"),
    ],
)
def test_future_witness_versions_decode_but_are_not_payouts(address: str, script: str) -> None:
    version, program = decode_segwit_address(address, "bc")
    witness_op = 0x50 + version if version else 0
    assert bytes((witness_op, len(program))) + program == bytes.fromhex(script)
    with pytest.raises(AddressError, match="unsupported witness version"):
        address_to_script(address, M)


BASE58_BAD = [
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", "checksum"),  # last character changed
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0a", "Base58 character"),  # '0' is not Base58
    ("", "empty"),
    ("1" * 60, "too long"),
    (encode_segwit_address("ltc", 0, bytes(20)), "prefix 'ltc'"),  # valid bech32, not bitcoin
    ("5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4dZ1jvhTVqvbTLvyTJ", "too long"),  # a private key (WIF)
]


@pytest.mark.parametrize(("address", "message"), BASE58_BAD)
def test_bad_base58(address: str, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        address_to_script(address, M)


def _b58check(payload: bytes) -> str:
    """A plain Base58Check encoder, written out here to build addresses the decoder must refuse."""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    data = payload + sha256d(payload)[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = alphabet[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def test_base58_encoder_in_this_file_agrees_with_known_addresses() -> None:
    assert _b58check(bytes(21)) == "1111111111111111111114oLvT2"
    assert decode_address("1111111111111111111114oLvT2", M).payload == bytes(20)
    assert _b58check(bytes.fromhex("0062e907b15cbf27d5425399ebf6f0fb50ebb88f18")) == (
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x30" + bytes(20), "unknown Base58 address version 0x30"),  # another coin's P2PKH
        (b"\x00" + bytes(19), "21 bytes, got 20"),
        (b"\x05" + bytes(21), "21 bytes, got 22"),
        (b"", "too short"),
    ],
)
def test_base58_payload_rules(payload: bytes, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        address_to_script(_b58check(payload), M)


def test_argument_types() -> None:
    with pytest.raises(AddressError, match="must be a str"):
        decode_address(b"1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", M)  # type: ignore[arg-type]
    with pytest.raises(AddressError, match="must be a Network"):
        decode_address("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "mainnet")  # type: ignore[arg-type]
    with pytest.raises(AddressError, match="not a standard payout script"):
        script_to_address(bytes.fromhex("6a0401020304"), M)
    with pytest.raises(AddressError, match="needs 20 bytes"):
        Address(AddressKind.P2PKH, M, bytes(19))


def test_chain_names() -> None:
    assert Network.from_chain_name("main") is M
    assert Network.from_chain_name("test") is T
    assert Network.from_chain_name("signet") is T
    assert Network.from_chain_name("testnet4") is T
    assert Network.from_chain_name("Regtest") is R
    with pytest.raises(AddressError, match="unknown chain"):
        Network.from_chain_name("liquid")
    assert (M.p2pkh_version, M.p2sh_version, M.hrp) == (0x00, 0x05, "bc")
    assert (T.p2pkh_version, T.p2sh_version, T.hrp) == (0x6F, 0xC4, "tb")
    assert (R.p2pkh_version, R.p2sh_version, R.hrp) == (0x6F, 0xC4, "bcrt")


# -- the bech32 checksum itself (BIP173 and BIP350 string vectors) --------------------------------

BECH32_VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]
BECH32M_VALID = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [(s, Bech32Encoding.BECH32) for s in BECH32_VALID] + [(s, Bech32Encoding.BECH32M) for s in BECH32M_VALID],
)
def test_bech32_checksums(text: str, encoding: Bech32Encoding) -> None:
    hrp, data, got = bech32_decode(text)
    assert got is encoding
    assert bech32_encode(hrp, data, encoding) == text.lower()


@pytest.mark.parametrize(
    "text",
    [
        "\x201xj0phk",
        "\x7f1g6xzxy",
        "\x801vctc34",
        "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
        "qyrz8wqd2c9m",
        "1qyrz8wqd2c9m",
        "y1b0jsk6g",
        "lt1igcx5c0",
        "in1muywd",
        "mm1crxm3i",
        "au1s5cgom",
        "M1VUXWEZ",
        "16plkw9",
        "1p2gdwpf",
    ],
)
def test_bech32m_invalid_strings(text: str) -> None:
    with pytest.raises(AddressError):
        bech32_decode(text)


# -- round trips ----------------------------------------------------------------------------------


@given(
    kind=st.sampled_from(list(AddressKind)),
    network=st.sampled_from(list(Network)),
    data=st.data(),
)
def test_round_trip(kind: AddressKind, network: Network, data: st.DataObject) -> None:
    size = 32 if kind in (AddressKind.P2WSH, AddressKind.P2TR) else 20
    payload = data.draw(st.binary(min_size=size, max_size=size))
    address = Address(kind, network, payload)
    text = address.encode()
    assert decode_address(text, network) == address
    assert decode_address(text.upper() if kind not in _BASE58 else text, network) == address
    assert script_to_address(address.script_pubkey, network) == text


_BASE58 = (AddressKind.P2PKH, AddressKind.P2SH)
