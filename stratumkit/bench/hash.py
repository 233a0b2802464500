"""`stratumkit bench hash`: the native core's throughput on one core, against the SHA-NI limit.

The limit is estimated from `openssl speed -bytes 16384 sha256` on the same machine: OpenSSL's
SHA-256 streams one 64-byte block after another, so bytes/s / 192 bounds an 80-byte header's
sha256d (three compressions) and bytes/s / 128 a scanned nonce (two, with the midstate cached).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable

from stratumkit import hashing, hashing_ref

BRANCH_LEVELS = 12  # the mainnet vector's branch: 2,500 transactions


def openssl_sha256_bytes_per_s() -> float | None:
    """OpenSSL's single-stream SHA-256 speed on 16 KiB buffers, or None without openssl."""
    exe = shutil.which("openssl")
    if exe is None:
        return None
    out = subprocess.run(
        [exe, "speed", "-seconds", "2", "-bytes", "16384", "sha256"], capture_output=True, text=True, check=False
    ).stdout
    m = re.search(r"^sha256\s+([\d.]+)k", out, re.MULTILINE)
    return float(m.group(1)) * 1000 if m else None


def _rate(fn: Callable[[], int], seconds: float) -> float:
    """Items per second: call fn (which returns how many items it did) until `seconds` pass."""
    fn()  # warm up
    done = 0
    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        done += fn()
    return done / elapsed


def _share_args() -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    rnd = os.urandom
    return rnd(100), rnd(4), rnd(8), rnd(150), rnd(32 * BRANCH_LEVELS), rnd(32)


def measure(seconds: float = 1.0) -> dict[str, dict[str, float]]:
    """Figures per implementation: header, scan and share rates (per second, one thread)."""
    results: dict[str, dict[str, float]] = {}
    headers = os.urandom(80 * 2048)  # a batch that stays in L2, as a miner's would
    c1, e1, e2, c2, branch, prev = _share_args()
    share_target = hashing.DIFF1_TARGET
    for impl in hashing.available_implementations():
        hashing.use_implementation(impl)
        job = hashing.PreparedJob(c1, c2, branch, prev, 0x1D00FFFF, share_target >> 32)
        scan_n = 2_000_000 if impl == "shani" else 300_000

        def shares(job: hashing.PreparedJob = job) -> int:
            for nonce in range(1000):
                job.check(e1, e2, 0x20000000, 1_700_000_000, nonce, share_target)
            return 1000

        results[impl] = {
            "headers": _rate(lambda: len(hashing.hash_headers(headers, 0)[0]) // 32, seconds),
            "scan": _rate(functools.partial(_scan, scan_n), seconds),
            "shares": _rate(shares, seconds),
        }
    hashing.use_implementation("auto")

    def ref_shares() -> int:
        for nonce in range(100):
            hashing_ref.check_share(
                c1,
                e1,
                e2,
                c2,
                branch,
                0x20000000,
                prev,
                1_700_000_000,
                0x1D00FFFF,
                nonce,
                share_target,
                share_target >> 32,
            )
        return 100

    results["python-reference"] = {
        "headers": _rate(lambda: len(hashing_ref.hash_headers(headers[: 80 * 1000], 0)[0]) // 32, seconds),
        "scan": _rate(lambda: len(hashing_ref.scan_nonces(bytes(76), 0, 5000, 0)) + 5000, seconds),
        "shares": _rate(ref_shares, seconds),
    }
    return results


def run(seconds: float = 1.0) -> None:
    print(f"stratumkit bench hash — one thread, {seconds:g} s per figure, CPU: {_cpu_name()}")
    limit = openssl_sha256_bytes_per_s()
    results = measure(seconds)
    print(f"{'path':<18} {'headers/s':>14} {'scan H/s':>14} {f'shares/s ({BRANCH_LEVELS}-level)':>22}")
    for impl, r in results.items():
        print(f"{impl:<18} {r['headers']:>14,.0f} {r['scan']:>14,.0f} {r['shares']:>22,.0f}")
    if limit is None:
        print("openssl not found: no SHA-NI limit to compare with")
        return
    best = results.get("shani") or results["portable"]
    print(
        f"openssl speed sha256 (16 KiB): {limit / 1e6:,.1f} MB/s -> limit "
        f"{limit / 192:,.0f} headers/s, {limit / 128:,.0f} scanned nonces/s"
    )
    print(f"header hashing: {100 * best['headers'] / (limit / 192):.1f}% of the limit (target >= 90%)")
    print(
        f"nonce scan:     {100 * best['scan'] / (limit / 128):.1f}% of the limit, "
        f"{best['scan'] / 1e6:.2f} MH/s (target >= 6.5 MH/s)"
    )
    print(f"share checks:   {best['shares']:,.0f}/s (target >= 300,000/s)")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _scan(count: int) -> int:
    """One scan of `count` nonces (none can meet target 0); the nonces tried."""
    hashing.scan_nonces(bytes(76), 0, count, 0)
    return count
