"""Type stub for the cffi module built from native/build_sha256d.py."""

from typing import Any

ffi: Any

class _Lib:
    def sk_available(self) -> int: ...
    def sk_set_impl(self, impl: int) -> int: ...
    def sk_impl(self) -> int: ...
    def sk_sha256(self, data: bytes, len: int, out: Any) -> None: ...
    def sk_sha256d(self, data: bytes, len: int, out: Any) -> None: ...
    def sk_sha256d_many(self, data: bytes, offsets: Any, n: int, out: Any) -> None: ...
    def sk_hash_headers(self, headers: bytes, n: int, target: bytes, hashes_out: Any, hits: Any) -> int: ...
    def sk_check_share(
        self,
        coinb1: bytes,
        coinb1_len: int,
        extranonce1: bytes,
        extranonce1_len: int,
        extranonce2: bytes,
        extranonce2_len: int,
        coinb2: bytes,
        coinb2_len: int,
        branch: bytes,
        n_branch: int,
        version: int,
        prevhash: bytes,
        ntime: int,
        nbits: int,
        nonce: int,
        share_target: bytes,
        network_target: bytes,
        header_out: Any,
        hash_out: Any,
    ) -> int: ...
    def sk_scan(self, header76: bytes, start: int, count: int, target: bytes, found: Any, max_found: int) -> int: ...

lib: _Lib
