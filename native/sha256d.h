/* stratumkit native SHA-256d core.
 *
 * Every entry point crosses from Python once per batch or once per share, never per hash.
 * Targets and hashes are compared as 256-bit little-endian numbers (Bitcoin's convention):
 * a hash meets a target when hash <= target.
 *
 * Two implementations of the SHA-256 compression function are chosen at run time: portable C,
 * and the x86 SHA extensions (SHA-NI). sk_set_impl() forces one; the Python layer also honours the
 * STRATUMKIT_SHA256 environment variable ("portable", "shani", "auto").
 */
#ifndef STRATUMKIT_SHA256D_H
#define STRATUMKIT_SHA256D_H

#include <stddef.h>
#include <stdint.h>

/* cffi-cdef-begin: native/build_sha256d.py gives cffi everything from here to the end marker as
 * the binding's declarations (its cdef), so this header is their one copy. Keep to what cffi's
 * parser reads: declarations, and #define only for integer constants (they become lib.SK_...). */

#define SK_IMPL_AUTO 0
#define SK_IMPL_PORTABLE 1
#define SK_IMPL_SHANI 2

#define SK_MEETS_SHARE 1
#define SK_MEETS_NETWORK 2

/* Which implementations this CPU can run: a bit set of (1 << SK_IMPL_*). */
int sk_available(void);
/* Select an implementation; returns the one now active, or -1 if it is not available here. */
int sk_set_impl(int impl);
int sk_impl(void);

void sk_sha256d(const uint8_t *data, size_t len, uint8_t out[32]);

/* n buffers laid end to end in data; buffer i spans offsets[i] .. offsets[i+1]. */
void sk_sha256d_many(const uint8_t *data, const size_t *offsets, size_t n, uint8_t *out);

/* Hash n 80-byte headers; write n hashes; write the indices meeting target to hits; return count. */
size_t sk_hash_headers(const uint8_t *headers, size_t n, const uint8_t target[32],
                       uint8_t *hashes_out, uint32_t *hits);

/* A job's constant share-check inputs, converted once per job so each share crosses into C with
 * only its own fields. coinb2 is borrowed: the caller keeps it alive as long as the job. */
#define SK_MAX_BRANCH 32
typedef struct {
    uint32_t mid[8];                      /* SHA-256 state after coinb1's whole 64-byte blocks */
    uint8_t rest[64];                     /* coinb1's bytes after those blocks */
    size_t rest_len;
    uint64_t coinb1_len;
    const uint8_t *coinb2;
    size_t coinb2_len;
    uint32_t branch[SK_MAX_BRANCH][8];    /* merkle branch hashes as big-endian words */
    size_t n_branch;
    uint8_t prevhash[32];
    uint32_t prevhash_words[8];           /* the prevhash as header message words */
    uint32_t nbits;
    uint8_t network_target[32];
} sk_job;

/* Returns 0, or -1 when n_branch > SK_MAX_BRANCH. */
int sk_job_init(sk_job *job, const uint8_t *coinb1, size_t coinb1_len,
                const uint8_t *coinb2, size_t coinb2_len,
                const uint8_t *branch, size_t n_branch,
                const uint8_t prevhash[32], uint32_t nbits, const uint8_t network_target[32]);

/* One share of a prepared job; out receives the 80-byte header then the 32-byte hash. */
int sk_job_check(const sk_job *job, const uint8_t *extranonce1, size_t extranonce1_len,
                 const uint8_t *extranonce2, size_t extranonce2_len,
                 uint32_t version, uint32_t ntime, uint32_t nonce,
                 const uint8_t share_target[32], uint8_t out[112]);

/* Try nonces start .. start+count-1 in bytes 76..79 of the header; the first 64 bytes are hashed
 * once (midstate). Writes at most max_found winning nonces; returns how many it wrote. */
size_t sk_scan(const uint8_t header76[76], uint32_t start, uint64_t count,
               const uint8_t target[32], uint32_t *found, size_t max_found);

/* cffi-cdef-end */

#endif
