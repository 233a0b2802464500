"""cffi build script (out-of-line API mode) for stratumkit._sha256d.

`pip install .` runs it through setup.py's cffi_modules; the C lives beside it in native/.
"""

import os
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

ffibuilder = FFI()
ffibuilder.cdef(
    """
    int sk_available(void);
    int sk_set_impl(int impl);
    int sk_impl(void);
    void sk_sha256(const uint8_t *data, size_t len, uint8_t out[32]);
    void sk_sha256d(const uint8_t *data, size_t len, uint8_t out[32]);
    void sk_sha256d_many(const uint8_t *data, const size_t *offsets, size_t n, uint8_t *out);
    size_t sk_hash_headers(const uint8_t *headers, size_t n, const uint8_t target[32],
                           uint8_t *hashes_out, uint32_t *hits);
    #define SK_MAX_BRANCH 32
    typedef struct { ...; } sk_job;
    int sk_job_init(sk_job *job, const uint8_t *coinb1, size_t coinb1_len,
                    const uint8_t *coinb2, size_t coinb2_len,
                    const uint8_t *branch, size_t n_branch,
                    const uint8_t prevhash[32], uint32_t nbits, const uint8_t network_target[32]);
    int sk_job_check(const sk_job *job, const uint8_t *extranonce1, size_t extranonce1_len,
                     const uint8_t *extranonce2, size_t extranonce2_len,
                     uint32_t version, uint32_t ntime, uint32_t nonce,
                     const uint8_t share_target[32], uint8_t out[112]);
    size_t sk_scan(const uint8_t header76[76], uint32_t start, uint64_t count,
                   const uint8_t target[32], uint32_t *found, size_t max_found);
    """
)
ffibuilder.set_source(
    "stratumkit._sha256d",
    '#include "sha256d.h"',
    # setuptools wants a path relative to the project root, where pip runs this script
    sources=[os.path.relpath(HERE / "sha256d.c")],
    include_dirs=[str(HERE)],
    extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-fno-strict-aliasing"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
