"""The Python layer refuses bad arguments with HashingError before C sees them."""

import os
import subprocess
import sys
import threading
import time

import pytest

from stratumkit import hashing
from stratumkit.hashing import HashingError

JOB = (b"c1", b"c2", bytes(64), bytes(32), 0x1D00FFFF, hashing.DIFF1_TARGET)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: hashing.sha256d("text"), "data must be bytes"),
        (lambda: hashing.sha256d_many(b"abc"), "sequence of bytes"),
        (lambda: hashing.sha256d_many([b"a", "b"]), "buffers[1] must be bytes"),
        (lambda: hashing.hash_headers(bytes(79), 0), "multiple of 80"),
        (lambda: hashing.hash_headers(bytes(80), -1), "target out of range"),
        (lambda: hashing.hash_headers(bytes(80), 1 << 256), "target out of range"),
        (lambda: hashing.hash_headers(bytes(80), 1.5), "target must be an int"),
        (lambda: hashing.PreparedJob(b"c1", b"c2", bytes(33), bytes(32), 0, 0), "multiple of 32"),
        (lambda: hashing.PreparedJob(b"c1", b"c2", bytes(32 * 33), bytes(32), 0, 0), "32 levels"),
        (lambda: hashing.PreparedJob(b"c1", b"c2", b"", bytes(31), 0, 0), "prevhash must be 32 bytes"),
        (lambda: hashing.PreparedJob("c1", b"c2", b"", bytes(32), 0, 0), "coinb1 must be bytes"),
        (lambda: hashing.PreparedJob(b"c1", b"c2", b"", bytes(32), 2**32, 0), "nbits out of range"),
        (lambda: hashing.PreparedJob(*JOB).check("00", b"", 0, 0, 0, 0), "extranonce1 must be bytes"),
        (lambda: hashing.PreparedJob(*JOB).check(b"", b"", 0, 0, -1, 0), "nonce out of range"),
        (lambda: hashing.PreparedJob(*JOB).check(b"", b"", 2**32, 0, 0, 0), "version out of range"),
        (lambda: hashing.PreparedJob(*JOB).check(b"", b"", 0, 0, 0, -5), "share_target out of range"),
        (lambda: hashing.PreparedJob(*JOB).check(b"", b"", 0, None, 0, 0), "ntime must be an int"),
        (lambda: hashing.scan_nonces(bytes(80), 0, 1, 0), "header76 must be 76 bytes"),
        (lambda: hashing.scan_nonces(bytes(76), 2**32 - 1, 2, 0), "past 2**32"),
        (lambda: hashing.scan_nonces(bytes(76), 0, 1, 0, max_found=0), "max_found"),
        (lambda: hashing.use_implementation("avx9000"), "unknown SHA-256 implementation"),
    ],
)
def test_bad_arguments_raise_hashing_error(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HashingError, match=message.replace("*", r"\*").replace("[", r"\[")):
        call()


def test_environment_variable_forces_the_portable_path() -> None:
    code = "from stratumkit import hashing; print(hashing.implementation())"
    env = dict(os.environ, STRATUMKIT_SHA256="portable")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "portable"
    env["STRATUMKIT_SHA256"] = "bogus"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown SHA-256 implementation" in bad.stderr


def test_the_gil_is_released_during_a_native_call() -> None:
    """While one thread scans in C, another thread keeps running Python."""
    count = 3_000_000 if hashing.implementation() == "shani" else 600_000
    done = threading.Event()
    spans: list[float] = []

    def scan() -> None:
        t0 = time.perf_counter()
        hashing.scan_nonces(bytes(76), 0, count, 0)
        spans.append(time.perf_counter() - t0)
        done.set()

    ticks = 0
    t = threading.Thread(target=scan)
    t.start()
    while not done.is_set():
        ticks += 1
    t.join()
    # Holding the GIL for the whole scan would leave this loop a handful of iterations at most.
    assert spans[0] > 0.05
    assert ticks > 10_000
