"""The Python layer refuses bad arguments with HashingError before C sees them, as the reference does."""

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from stratumkit import hashing, hashing_ref
from stratumkit.hashing import HashingError

JOB = (b"c1", b"c2", bytes(64), bytes(32), 0x1D00FFFF, hashing.DIFF1_TARGET)


def share(**bad: Any) -> tuple[str, tuple[Any, ...]]:
    """check_share with good arguments, except the ones given."""
    args = {
        "coinb1": b"c1",
        "extranonce1": b"",
        "extranonce2": b"",
        "coinb2": b"c2",
        "merkle_branch": b"",
        "version": 0,
        "prevhash": bytes(32),
        "ntime": 0,
        "nbits": 0,
        "nonce": 0,
        "share_target": 0,
        "network_target": 0,
    }
    assert set(bad) <= set(args)
    return "check_share", tuple({**args, **bad}.values())


@pytest.mark.parametrize("module", [hashing, hashing_ref], ids=["native", "reference"])
@pytest.mark.parametrize(
    ("function", "args", "message"),
    [
        ("sha256d", ("text",), "data must be bytes"),
        ("sha256d_many", (b"abc",), "sequence of bytes"),
        ("sha256d_many", ([b"a", "b"],), "buffers[1] must be bytes"),
        ("hash_headers", (bytes(79), 0), "multiple of 80"),
        ("hash_headers", (bytes(80), -1), "target out of range"),
        ("hash_headers", (bytes(80), 1 << 256), "target out of range"),
        ("hash_headers", (bytes(80), 1.5), "target must be an int"),
        (*share(coinb1="c1"), "coinb1 must be bytes"),
        (*share(coinb2=bytearray(b"c2")), "coinb2 must be bytes, not bytearray"),
        (*share(merkle_branch=bytes(33)), "multiple of 32"),
        (*share(merkle_branch=bytes(32 * 33)), "32 levels"),
        (*share(prevhash=bytes(31)), "prevhash must be 32 bytes"),
        (*share(nbits=2**32), "nbits out of range"),
        (*share(network_target=1 << 256), "network_target out of range"),
        (*share(extranonce1="00"), "extranonce1 must be bytes"),
        (*share(extranonce2=memoryview(b"")), "extranonce2 must be bytes, not memoryview"),
        (*share(version=2**32), "version out of range"),
        (*share(ntime=None), "ntime must be an int"),
        (*share(nonce=-1), "nonce out of range"),
        (*share(share_target=-5), "share_target out of range"),
        ("scan_nonces", (bytes(80), 0, 1, 0), "header76 must be 76 bytes"),
        ("scan_nonces", (bytes(76), 2**32 - 1, 2, 0), "past 2**32"),
        ("scan_nonces", (bytes(76), 0, 1, 0, 0), "max_found"),
    ],
)
def test_native_and_reference_refuse_alike(module: Any, function: str, args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(HashingError, match=re.escape(message)):
        getattr(module, function)(*args)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: hashing.PreparedJob(b"c1", b"c2", bytes(33), bytes(32), 0, 0), "multiple of 32"),
        (lambda: hashing.PreparedJob(*JOB).check(b"", b"", 0, 0, -1, 0), "nonce out of range"),
        (lambda: hashing.PreparedJob(*JOB).check(b"", b"", 0, 0, 0, -5), "share_target out of range"),
        (lambda: hashing.use_implementation("avx9000"), "unknown SHA-256 implementation"),
    ],
)
def test_bad_arguments_raise_hashing_error(call: Callable[[], object], message: str) -> None:
    """What only the native module has: a job prepared once, the implementation switch."""
    with pytest.raises(HashingError, match=re.escape(message)):
        call()


def test_both_modules_share_one_error_and_result_type() -> None:
    assert hashing.HashingError is hashing_ref.HashingError
    assert hashing.ShareResult is hashing_ref.ShareResult


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
