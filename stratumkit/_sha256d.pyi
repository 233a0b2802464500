"""Type stub for the cffi module that native/build_sha256d.py builds from native/sha256d.h.

It declares exactly what the compiled `lib` has (tests/hashing/test_stub.py compares the two):
the header's integer #defines as constants and its functions with their C parameter names. A
`const uint8_t *` input is `bytes`; output buffers and `sk_job *` are cffi cdata (`Any`).
"""

from typing import Any

ffi: Any

class _Lib:
    SK_IMPL_AUTO: int
    SK_IMPL_PORTABLE: int
    SK_IMPL_SHANI: int
    SK_MAX_BRANCH: int
    SK_MEETS_NETWORK: int
    SK_MEETS_SHARE: int
    def sk_available(self) -> int: ...
    def sk_set_impl(self, impl: int) -> int: ...
    def sk_impl(self) -> int: ...
    def sk_sha256d(self, data: bytes, len: int, out: Any) -> None: ...
    def sk_sha256d_many(self, data: bytes, offsets: Any, n: int, out: Any) -> None: ...
    def sk_hash_headers(self, headers: bytes, n: int, target: bytes, hashes_out: Any, hits: Any) -> int: ...
    def sk_job_init(
        self,
        job: Any,
        coinb1: bytes,
        coinb1_len: int,
        coinb2: bytes,
        coinb2_len: int,
        branch: bytes,
        n_branch: int,
        prevhash: bytes,
        nbits: int,
        network_target: bytes,
    ) -> int: ...
    def sk_job_check(
        self,
        job: Any,
        extranonce1: bytes,
        extranonce1_len: int,
        extranonce2: bytes,
        extranonce2_len: int,
        version: int,
        ntime: int,
        nonce: int,
        share_target: bytes,
        out: Any,
    ) -> int: ...
    def sk_scan(self, header76: bytes, start: int, count: int, target: bytes, found: Any, max_found: int) -> int: ...

lib: _Lib
