"""Real chain data through the share path: genesis, and the mainnet/testnet vectors' coinbases."""

import json
from pathlib import Path

import pytest

from stratumkit import hashing

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
GENESIS = bytes.fromhex(
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e"
    "67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
)


def nbits_to_target(nbits: int) -> int:
    return (nbits & 0xFFFFFF) << (8 * ((nbits >> 24) - 3))


def test_genesis_header(impl: str) -> None:
    assert hashing.sha256d(GENESIS)[::-1].hex() == "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    hashes, hits = hashing.hash_headers(GENESIS * 3, nbits_to_target(0x1D00FFFF))
    assert hits == [0, 1, 2] and hashes == hashing.sha256d(GENESIS) * 3
    # the genesis nonce is found by a scan over a range around it
    assert hashing.scan_nonces(GENESIS[:76], 2083236893 - 500, 1000, nbits_to_target(0x1D00FFFF)) == [2083236893]


@pytest.mark.parametrize("name", ["mainnet_702861_gbt.json", "testnet_924634_gbt.json"])
@pytest.mark.parametrize("split", [0, 41, 42, 60, 64, 100])
def test_real_block_through_the_share_path(impl: str, name: str, split: int) -> None:
    """Split the real coinbase into coinb1|extranonce1|extranonce2|coinb2, fold the real branch."""
    v = json.loads((VECTORS / name).read_text())
    e = v["expected"]
    cb = bytes.fromhex(e["real_coinbase_tx_nowitness_hex"])
    branch = b"".join(bytes.fromhex(h) for h in e["stratum_merkle_branch"])
    coinb1, en1, en2, coinb2 = cb[:split], cb[split : split + 4], cb[split + 4 : split + 12], cb[split + 12 :]
    header = bytes.fromhex(e["header_hex"])
    version = int(e["version_hex"], 16)
    ntime = int(e["ntime_hex"], 16)
    nbits = int(e["nbits_hex"], 16)
    nonce = int(e["nonce_hex"], 16)
    target = nbits_to_target(nbits)
    r = hashing.check_share(
        coinb1, en1, en2, coinb2, branch, version, header[4:36], ntime, nbits, nonce, hashing.DIFF1_TARGET, target
    )
    assert r.header == header
    assert r.hash[::-1].hex() == e["block_hash"]
    assert r.meets_network and r.meets_share
    # one nonce off is neither a block nor (at this difficulty, overwhelmingly) a share
    miss = hashing.check_share(
        coinb1,
        en1,
        en2,
        coinb2,
        branch,
        version,
        header[4:36],
        ntime,
        nbits,
        (nonce + 1) % 2**32,
        hashing.DIFF1_TARGET,
        target,
    )
    assert not miss.meets_network
