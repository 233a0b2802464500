"""The native core against hashlib (through hashing_ref) on random inputs, for both C paths."""

import hashlib
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratumkit import hashing, hashing_ref

# the impl fixture only selects a C path, which stays the same across generated inputs
native = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

targets = st.one_of(
    st.integers(0, hashing.MAX_TARGET),
    st.integers(0, 256).map(lambda n: (1 << n) - 1 if n else 0),
)


def hashlib_d(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


@native
@given(st.binary(max_size=600))
def test_sha256d_matches_hashlib(impl: str, data: bytes) -> None:
    assert hashing.implementation() == impl
    assert hashing.sha256d(data) == hashlib_d(data)


def test_sha256d_every_length_across_block_boundaries(impl: str) -> None:
    data = bytes(range(256)) * 3
    for n in range(0, 300):
        assert hashing.sha256d(data[:n]) == hashlib_d(data[:n]), n


@native
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_sha256d_many(impl: str, buffers: list[bytes]) -> None:
    assert hashing.sha256d_many(buffers) == [hashlib_d(b) for b in buffers]


@native
@given(st.lists(st.binary(min_size=80, max_size=80), max_size=9), targets)
def test_hash_headers(impl: str, headers: list[bytes], target: int) -> None:
    blob = b"".join(headers)
    assert hashing.hash_headers(blob, target) == hashing_ref.hash_headers(blob, target)


@native
@given(
    st.binary(max_size=150),
    st.binary(max_size=8),
    st.binary(max_size=8),
    st.binary(max_size=300),
    st.lists(st.binary(min_size=32, max_size=32), max_size=14),
    st.integers(0, 2**32 - 1),
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    targets,
    targets,
)
def test_check_share(
    impl: str,
    c1: bytes,
    e1: bytes,
    e2: bytes,
    c2: bytes,
    branch: list[bytes],
    version: int,
    prev: bytes,
    ntime: int,
    nbits: int,
    nonce: int,
    share_t: int,
    net_t: int,
) -> None:
    args = (c1, e1, e2, c2, b"".join(branch), version, prev, ntime, nbits, nonce, share_t, net_t)
    got = hashing.check_share(*args)
    assert got == hashing_ref.check_share(*args)
    assert got.hash == hashlib_d(got.header)


@settings(native, max_examples=25)
@given(st.binary(min_size=76, max_size=76), st.integers(0, 2**32 - 3000), st.integers(0, 2500))
def test_scan_nonces(impl: str, header76: bytes, start: int, count: int) -> None:
    target = (1 << 250) - 1  # about one nonce in 64 qualifies
    assert hashing.scan_nonces(header76, start, count, target, max_found=1000) == hashing_ref.scan_nonces(
        header76, start, count, target, max_found=1000
    )


def test_scan_stops_at_max_found_and_reaches_the_last_nonce(impl: str) -> None:
    header76 = bytes(76)
    assert len(hashing.scan_nonces(header76, 0, 5000, hashing.MAX_TARGET, max_found=7)) == 7
    # the very last nonce of the 32-bit space is tried (no off-by-one at the top)
    assert hashing.scan_nonces(header76, 2**32 - 3, 3, hashing.MAX_TARGET) == [2**32 - 3, 2**32 - 2, 2**32 - 1]
    # odd counts exercise the single-lane tail after the two-lane loop
    got = hashing.scan_nonces(header76, 10, 5, hashing.MAX_TARGET)
    assert got == [10, 11, 12, 13, 14]
    assert hashing.scan_nonces(header76, 10, 0, hashing.MAX_TARGET) == []


def test_target_boundaries(impl: str) -> None:
    header = struct.pack("<I", 1) + bytes(76)
    digest = hashlib_d(header)
    n = int.from_bytes(digest, "little")
    _, hits_equal = hashing.hash_headers(header, n)
    _, hits_below = hashing.hash_headers(header, n - 1)
    _, hits_above = hashing.hash_headers(header, n + 1)
    assert hits_equal == [0]  # hash == target meets it
    assert hits_below == []  # target one below the hash does not
    assert hits_above == [0]
    nonce = struct.unpack("<I", header[76:])[0]
    assert hashing.scan_nonces(header[:76], nonce, 1, n) == [nonce]
    assert hashing.scan_nonces(header[:76], nonce, 1, n - 1) == []
    job = hashing.PreparedJob(b"", b"", b"", bytes(32), 0, n)
    r = job.check(b"", b"", 0, 0, 0, 0)
    m = int.from_bytes(r.hash, "little")
    assert hashing.PreparedJob(b"", b"", b"", bytes(32), 0, m).check(b"", b"", 0, 0, 0, m) == (
        r.header,
        r.hash,
        True,
        True,
    )
    assert hashing.PreparedJob(b"", b"", b"", bytes(32), 0, m - 1).check(b"", b"", 0, 0, 0, m - 1)[2:] == (False, False)
