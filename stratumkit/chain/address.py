"""Payout addresses: decode to the scriptPubKey a coinbase pays, and encode back.

Rules:
- Supported kinds: P2PKH and P2SH (Base58Check), P2WPKH and P2WSH (bech32, witness v0) and P2TR
  (bech32m, witness v1, 32 bytes). Anything else is refused with `AddressError`: a pool that pays
  a coinbase to a script it does not understand may burn the block reward.
- An address is decoded *for a network*. Testnet, testnet4 and signet share prefixes (Base58
  versions 0x6f/0xc4, hrp "tb"); regtest shares the Base58 versions and has its own hrp "bcrt".
- Bech32 strings follow BIP173/BIP350: at most 90 characters, one case throughout, bech32 for
  witness v0 and bech32m for v1 and later, zero padding of at most 4 bits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from stratumkit.chain.errors import AddressError
from stratumkit.hashing import sha256d

__all__ = [
    "Address",
    "AddressKind",
    "Bech32Encoding",
    "Network",
    "address_to_script",
    "bech32_decode",
    "bech32_encode",
    "decode_address",
    "decode_segwit_address",
    "encode_segwit_address",
    "script_to_address",
]


class Network(enum.Enum):
    """The chain an address belongs to. Signet and testnet4 addresses are TESTNET addresses."""

    MAINNET = "mainnet"
    TESTNET = "testnet"
    REGTEST = "regtest"

    @property
    def p2pkh_version(self) -> int:
        return 0x00 if self is Network.MAINNET else 0x6F

    @property
    def p2sh_version(self) -> int:
        return 0x05 if self is Network.MAINNET else 0xC4

    @property
    def hrp(self) -> str:
        return _HRP[self]

    @classmethod
    def from_chain_name(cls, name: str) -> Network:
        """Map a chain name (Bitcoin Core's `getblockchaininfo` `chain`, or ours) to a Network."""
        try:
            return _CHAIN_NAMES[name.strip().lower()]
        except KeyError:
            raise AddressError(f"unknown chain name {name!r}") from None


_HRP = {Network.MAINNET: "bc", Network.TESTNET: "tb", Network.REGTEST: "bcrt"}
_CHAIN_NAMES = {
    "main": Network.MAINNET,
    "mainnet": Network.MAINNET,
    "test": Network.TESTNET,
    "testnet": Network.TESTNET,
    "testnet3": Network.TESTNET,
    "testnet4": Network.TESTNET,
    "signet": Network.TESTNET,
    "regtest": Network.REGTEST,
}


class AddressKind(enum.Enum):
    P2PKH = "p2pkh"
    P2SH = "p2sh"
    P2WPKH = "p2wpkh"
    P2WSH = "p2wsh"
    P2TR = "p2tr"


_PROGRAM_LENGTH = {
    AddressKind.P2PKH: 20,
    AddressKind.P2SH: 20,
    AddressKind.P2WPKH: 20,
    AddressKind.P2WSH: 32,
    AddressKind.P2TR: 32,
}
_WITNESS_KIND = {(0, 20): AddressKind.P2WPKH, (0, 32): AddressKind.P2WSH, (1, 32): AddressKind.P2TR}
_WITNESS_VERSION = {kind: version for (version, _), kind in _WITNESS_KIND.items()}


@dataclass(frozen=True, slots=True)
class Address:
    """A decoded payout address: a hash (P2PKH/P2SH) or witness program, and its network."""

    kind: AddressKind
    network: Network
    payload: bytes

    def __post_init__(self) -> None:
        expected = _PROGRAM_LENGTH[self.kind]
        if len(self.payload) != expected:
            raise AddressError(f"{self.kind.value} needs {expected} bytes, got {len(self.payload)}")

    @property
    def script_pubkey(self) -> bytes:
        p = self.payload
        if self.kind is AddressKind.P2PKH:
            return b"\x76\xa9\x14" + p + b"\x88\xac"  # DUP HASH160 <20> EQUALVERIFY CHECKSIG
        if self.kind is AddressKind.P2SH:
            return b"\xa9\x14" + p + b"\x87"  # HASH160 <20> EQUAL
        version = _WITNESS_VERSION[self.kind]
        return bytes((0x50 + version if version else 0, len(p))) + p

    def encode(self) -> str:
        if self.kind is AddressKind.P2PKH:
            return _b58check_encode(bytes((self.network.p2pkh_version,)) + self.payload)
        if self.kind is AddressKind.P2SH:
            return _b58check_encode(bytes((self.network.p2sh_version,)) + self.payload)
        return encode_segwit_address(self.network.hrp, _WITNESS_VERSION[self.kind], self.payload)

    def __str__(self) -> str:
        return self.encode()


def address_to_script(address: str, network: Network) -> bytes:
    """The scriptPubKey that pays `address` on `network`."""
    return decode_address(address, network).script_pubkey


def decode_address(address: str, network: Network) -> Address:
    if not isinstance(address, str):
        raise AddressError(f"address must be a str, not {type(address).__name__}")
    if not isinstance(network, Network):
        raise AddressError(f"network must be a Network, not {type(network).__name__}")
    text = address.strip()
    if not text:
        raise AddressError("empty address")
    hrp = _bech32_hrp(text)
    if hrp is not None:
        return _decode_segwit_payout(text, hrp, network)
    try:
        return _decode_base58_payout(text, network)
    except AddressError as base58_error:
        try:
            other_hrp, _, _ = bech32_decode(text)
        except AddressError:
            raise base58_error from None  # not bech32 either: the Base58 error explains best
        known = ", ".join(repr(n.hrp) for n in Network)
        raise AddressError(f"bech32 address prefix {other_hrp!r} is not a Bitcoin network's ({known})") from None


def script_to_address(script_pubkey: bytes, network: Network) -> str:
    """The address for a standard payout script (inverse of `address_to_script`)."""
    s = bytes(script_pubkey)
    if len(s) == 25 and s[:3] == b"\x76\xa9\x14" and s[23:] == b"\x88\xac":
        return Address(AddressKind.P2PKH, network, s[3:23]).encode()
    if len(s) == 23 and s[:2] == b"\xa9\x14" and s[22] == 0x87:
        return Address(AddressKind.P2SH, network, s[2:22]).encode()
    if len(s) >= 4 and (s[0] == 0 or 0x51 <= s[0] <= 0x60) and s[1] == len(s) - 2:
        version = s[0] - 0x50 if s[0] else 0
        kind = _WITNESS_KIND.get((version, s[1]))
        if kind is not None:
            return Address(kind, network, s[2:]).encode()
    raise AddressError(f"not a standard payout script: {s.hex()}")


# --- Base58Check -------------------------------------------------------------------------------

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def _b58check_encode(payload: bytes) -> str:
    data = payload + sha256d(payload)[:4]
    n = int.from_bytes(data, "big")
    digits = []
    while n:
        n, r = divmod(n, 58)
        digits.append(_B58_ALPHABET[r])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + "".join(reversed(digits))


def _b58check_decode(text: str) -> bytes:
    n = 0
    for c in text:
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise AddressError(f"invalid Base58 character {c!r}")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    data = b"\x00" * zeros + body
    if len(data) < 5:
        raise AddressError("Base58Check string too short")
    payload, checksum = data[:-4], data[-4:]
    if sha256d(payload)[:4] != checksum:
        raise AddressError("bad Base58Check checksum")
    return payload


def _decode_base58_payout(text: str, network: Network) -> Address:
    if len(text) > 40:  # 25-byte payloads take 26..35 characters
        raise AddressError(f"address too long for Base58 ({len(text)} characters)")
    payload = _b58check_decode(text)
    if len(payload) != 21:
        raise AddressError(f"Base58 address payload must be 21 bytes, got {len(payload)}")
    version, body = payload[0], payload[1:]
    if version == network.p2pkh_version:
        return Address(AddressKind.P2PKH, network, body)
    if version == network.p2sh_version:
        return Address(AddressKind.P2SH, network, body)
    for other in Network:
        if version in (other.p2pkh_version, other.p2sh_version):
            raise AddressError(f"address is for {_base58_networks(other)}, not {network.value}")
    raise AddressError(f"unknown Base58 address version {version:#04x}")


def _base58_networks(network: Network) -> str:
    return "mainnet" if network is Network.MAINNET else "testnet/signet/regtest"


# --- Bech32 / Bech32m (BIP173, BIP350) ---------------------------------------------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX = {c: i for i, c in enumerate(_CHARSET)}
_BECH32_CONST = 1
_BECH32M_CONST = 0x2BC830A3
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class Bech32Encoding(enum.Enum):
    """The checksum variant: the value is the constant XORed into the checksum."""

    BECH32 = _BECH32_CONST
    BECH32M = _BECH32M_CONST


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= g
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _bech32_hrp(text: str) -> str | None:
    """The human-readable part if `text` looks like bech32 for a known network, else None."""
    pos = text.rfind("1")
    if pos < 1:
        return None
    hrp = text[:pos].lower()
    return hrp if hrp in _HRP.values() else None


def bech32_decode(text: str) -> tuple[str, list[int], Bech32Encoding]:
    """(hrp, 5-bit data without checksum, variant) of any valid bech32 or bech32m string."""
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise AddressError("bech32 string has a character out of range")
    if text.lower() != text and text.upper() != text:
        raise AddressError("bech32 string mixes upper and lower case")
    if len(text) > 90:
        raise AddressError(f"bech32 string longer than 90 characters ({len(text)})")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1:
        raise AddressError("bech32 string has no human-readable part")
    if pos + 7 > len(text):
        raise AddressError("bech32 checksum too short")
    hrp = text[:pos]
    try:
        data = [_CHARSET_INDEX[c] for c in text[pos + 1 :]]
    except KeyError as exc:
        raise AddressError(f"invalid bech32 data character {exc.args[0]!r}") from None
    check = _polymod(_hrp_expand(hrp) + data)
    for encoding in Bech32Encoding:
        if check == encoding.value:
            return hrp, data[:-6], encoding
    raise AddressError("bad bech32 checksum")


def bech32_encode(hrp: str, data: list[int], encoding: Bech32Encoding) -> str:
    values = _hrp_expand(hrp) + data
    polymod = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ encoding.value
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def _convert_bits(data: list[int] | bytes, from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits:
        raise AddressError("bech32 data has more than 4 bits of padding")
    elif (acc << (to_bits - bits)) & maxv:
        raise AddressError("bech32 data has non-zero padding")
    return out


def decode_segwit_address(address: str, hrp: str) -> tuple[int, bytes]:
    """(witness version, witness program) of any BIP173/BIP350-valid address with this hrp."""
    got_hrp, data, encoding = bech32_decode(address)
    if got_hrp != hrp:
        raise AddressError(f"address has prefix {got_hrp!r}, expected {hrp!r}")
    if not data:
        raise AddressError("segwit address has no data")
    version = data[0]
    if version > 16:
        raise AddressError(f"invalid witness version {version}")
    program = bytes(_convert_bits(data[1:], 5, 8, pad=False))
    if not 2 <= len(program) <= 40:
        raise AddressError(f"invalid witness program length {len(program)}")
    if version == 0 and len(program) not in (20, 32):
        raise AddressError(f"witness v0 program must be 20 or 32 bytes, got {len(program)}")
    expected = Bech32Encoding.BECH32 if version == 0 else Bech32Encoding.BECH32M
    if encoding is not expected:
        raise AddressError(f"witness v{version} address must use {expected.name.lower()}, not {encoding.name.lower()}")
    return version, program


def encode_segwit_address(hrp: str, version: int, program: bytes) -> str:
    if not 0 <= version <= 16:
        raise AddressError(f"invalid witness version {version}")
    if not 2 <= len(program) <= 40 or (version == 0 and len(program) not in (20, 32)):
        raise AddressError(f"invalid witness program length {len(program)} for v{version}")
    encoding = Bech32Encoding.BECH32 if version == 0 else Bech32Encoding.BECH32M
    return bech32_encode(hrp, [version, *_convert_bits(program, 8, 5, pad=True)], encoding)


def _decode_segwit_payout(text: str, hrp: str, network: Network) -> Address:
    if hrp != network.hrp:
        owner = next(n for n in Network if n.hrp == hrp)
        raise AddressError(f"address is for {owner.value} (prefix {hrp!r}), not {network.value}")
    version, program = decode_segwit_address(text, network.hrp)
    kind = _WITNESS_KIND.get((version, len(program)))
    if kind is None:
        raise AddressError(
            f"unsupported witness version {version} with a {len(program)}-byte program "
            "(payouts go to P2WPKH, P2WSH or P2TR only)"
        )
    return Address(kind, network, program)
